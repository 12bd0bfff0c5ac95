"""Labelled images from a folder with one subfolder per class (the torchvision ImageFolder layout),
preprocessed as the model expects: resized, scaled to [0, 1], normalised per channel, laid out.

Classes are the subfolder names in sorted order (class i = the i-th name): the same order the
model was trained with if it came from ImageFolder. Pillow comes with matplotlib (codegen extra).
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from edgesplit.runtime.bundle.manifest import TensorSpec
from edgesplit.runtime.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


@dataclass(frozen=True)
class Preprocessing:
    size: Optional[Tuple[int, int]] = None  # (height, width); default: the model input's
    mean: Sequence[float] = (0.0,)  # per channel, on the [0, 1] scale; one value applies to every channel
    std: Sequence[float] = (1.0,)
    layout: str = "nchw"  # or "nhwc"

    def describe(self) -> Dict:
        return {"size": list(self.size) if self.size else None, "mean": list(self.mean), "std": list(self.std),
                "layout": self.layout, "scale": "uint8 / 255 then (x - mean) / std", "resize": "bilinear (Pillow)"}


def load_image_folder(root, model_input: TensorSpec, prep: Preprocessing) -> Tuple[np.ndarray, np.ndarray, Dict]:
    from PIL import Image

    root = Path(root)
    classes = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if not classes:
        raise InputError("%s: no class subfolders; --image-dir wants one subfolder per class holding its images"
                         % root)
    shape = model_input.shape
    if len(shape) != 4:
        raise InputError("--image-dir needs a model whose input is an image batch (rank 4); %r is %s"
                         % (model_input.name, list(shape)))
    channels, height, width = (shape[1], shape[2], shape[3]) if prep.layout == "nchw" else (shape[3], shape[1],
                                                                                            shape[2])
    height, width = prep.size or (height, width)
    if channels not in (1, 3) or height is None or width is None:
        raise InputError("cannot tell the image size/channels from the model input %s with layout %s: give --size "
                         "H,W and check --layout" % (list(shape), prep.layout))
    mean, std = _per_channel(prep.mean, channels, "--mean"), _per_channel(prep.std, channels, "--std")
    images: List[np.ndarray] = []
    labels: List[int] = []
    for index, name in enumerate(classes):
        files = sorted(p for p in (root / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        for path in files:
            try:
                with Image.open(path) as image:
                    pixels = np.asarray(image.convert("L" if channels == 1 else "RGB").resize(
                        (width, height), Image.BILINEAR), dtype=np.float32)
            except OSError as exc:
                raise InputError("%s: cannot read as an image (%s)" % (path, exc)) from None
            pixels = pixels.reshape(height, width, channels) / np.float32(255.0)
            pixels = (pixels - mean) / std
            images.append(pixels.transpose(2, 0, 1) if prep.layout == "nchw" else pixels)
            labels.append(index)
    if not images:
        raise InputError("%s: the class subfolders hold no images (%s)" % (root, ", ".join(IMAGE_SUFFIXES)))
    source = {"image_dir": str(root), "classes": classes, "preprocessing": prep.describe()}
    return np.stack(images).astype(np.float32), np.asarray(labels, dtype=np.int64), source


def _per_channel(values: Sequence[float], channels: int, flag: str) -> np.ndarray:
    values = list(values)
    if len(values) == 1:
        values = values * channels
    if len(values) != channels:
        raise InputError("%s has %d values but the model reads %d channels" % (flag, len(values), channels))
    return np.asarray(values, dtype=np.float32)
