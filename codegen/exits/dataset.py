"""The user's labelled data for ``add-exits``: checked against the model's input, split three ways.

Images must already be what the model reads (its preprocessing applied): shape (N, *input shape
without the batch), the input's dtype. The split is stratified-free and seeded: a random permutation
cut into train (the heads learn on it), calibration (the thresholds are chosen on it) and test (the
reported accuracy and compute saving are measured on it; nothing is fitted to it).
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Sequence, Tuple

import numpy as np

from edgesplit.runtime.bundle.manifest import TensorSpec
from edgesplit.runtime.errors import InputError
from edgesplit.runtime.inputs import check_labels, check_model_input
from edgesplit.runtime.segments.base import check_finite

SPLIT_SHARES = (0.6, 0.2, 0.2)  # train, calibration, test
MIN_PER_CLASS_TRAIN = 5
MIN_SPLIT = 20


@dataclass(frozen=True)
class Part:
    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True)
class LabelledData:
    train: Part
    calibration: Part
    test: Part
    source: Dict  # what the data was and how it was split (recorded in the bundle's provenance)


def minimum_images(classes: int) -> int:
    """The fewest images add-exits accepts for labels of ``classes`` distinct classes: MIN_PER_CLASS_TRAIN per class
    in train, MIN_SPLIT in each other part."""
    return max(int(np.ceil(MIN_PER_CLASS_TRAIN * classes / SPLIT_SHARES[0])),
               int(np.ceil(MIN_SPLIT / min(SPLIT_SHARES[1:]))))


def check_images(images: np.ndarray, labels: np.ndarray, model_input: TensorSpec, classes: int,
                 images_name: str, labels_name: str) -> None:
    """Refuse data the model cannot read or the heads cannot learn from, naming the file and what to do."""
    check_model_input(images, model_input, images_name, "the model", "images")
    check_finite(model_input.name, images, images_name)  # the whole file at once: every bad value counted
    check_labels(labels, len(images), int(classes), labels_name, images_name)
    # Per class that occurs: a 1000-class model may be given images of the classes a deployment sees.
    present = int(len(np.unique(labels)))
    needed = minimum_images(present)
    if len(labels) < needed:
        raise InputError("%s: %d labelled images are too few: add-exits needs at least %d for %d classes "
                         "(%d per class to train the heads on %d%% of them, and %d each to calibrate and to test)"
                         % (images_name, len(labels), needed, present, MIN_PER_CLASS_TRAIN,
                            round(100 * SPLIT_SHARES[0]), MIN_SPLIT))


def split_data(images: np.ndarray, labels: np.ndarray, seed: int, source: Dict) -> LabelledData:
    order = np.random.RandomState(seed).permutation(len(labels))
    n_train = int(round(SPLIT_SHARES[0] * len(labels)))
    n_cal = int(round(SPLIT_SHARES[1] * len(labels)))
    parts = [order[:n_train], order[n_train:n_train + n_cal], order[n_train + n_cal:]]
    train, cal, test = (Part(np.ascontiguousarray(images[p]), np.asarray(labels[p], dtype=np.int64)) for p in parts)
    described = dict(source)
    described.update({"images": int(len(labels)), "split_seed": seed,
                      "split": {"train": len(train), "calibration": len(cal), "test": len(test)},
                      "split_rule": "a seeded random permutation cut %d/%d/%d %%: heads learn on train, thresholds "
                                    "are chosen on calibration, the reported figures are measured on test"
                                    % tuple(round(100 * s) for s in SPLIT_SHARES)})
    return LabelledData(train, cal, test, described)


def load_arrays(images_path: str, labels_path: str) -> Tuple[np.ndarray, np.ndarray, Dict]:
    from edgesplit.runtime.bundle.manifest import file_sha256

    arrays = []
    for path in (images_path, labels_path):
        try:
            arrays.append(np.load(path, allow_pickle=False))
        except (OSError, ValueError) as exc:
            raise InputError("%s: cannot read as a .npy array (%s)" % (path, exc)) from None
    source = {"images_file": Path(images_path).name, "images_sha256": file_sha256(images_path),
              "labels_file": Path(labels_path).name, "labels_sha256": file_sha256(labels_path)}
    return arrays[0], arrays[1], source


def class_counts(labels: np.ndarray, classes: int) -> Sequence[int]:
    return [int(c) for c in np.bincount(labels, minlength=classes)]
