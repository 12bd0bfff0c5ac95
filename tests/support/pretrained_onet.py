"""A real pretrained classifier and real labelled data that install offline, for docs/walkthrough.md.

The model: MTCNN's ONet (Zhang et al. 2016), the face / not-face stage of the MTCNN face detector,
with the pretrained weights shipped inside the ``facenet-pytorch`` wheel on PyPI
(``facenet_pytorch/data/onet.pt``, MIT licence; weights ported from David Sandberg's TensorFlow
facenet, itself from the authors' Caffe model). Only the state dict is read: facenet-pytorch's
code pins an old torch and torchvision, so the wheel is downloaded without dependencies and never
installed. ``ONet`` below re-declares its layers (as in facenet_pytorch/models/mtcnn.py) and keeps
one head: the two face logits (class 1 = face, as MTCNN reads ``softmax(...)[:, 1]``).

The data: ``skimage.data.lfw_subset()`` of scikit-image, 200 real 25x25 grey images from Labeled
Faces in the Wild: the first 100 are faces, the last 100 are not. The array file is read straight
out of the scikit-image wheel (``skimage/data/lfw_subset.npy``), so nothing is installed either.

Preprocessing (MTCNN's for ONet): grey to three channels, bilinear resize to 48x48, pixels in 0..255,
then ``(x - 127.5) / 128``; float32 NCHW.

``fetch_wheels(cache)`` downloads both wheels with ``pip download --no-deps`` (PyPI must be
reachable; pass the cache folder again and nothing is downloaded twice).
"""
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Dict, Tuple

import numpy as np

FACENET = ("facenet-pytorch", "2.6.0")
SCIKIT_IMAGE = ("scikit-image", "0.26.0")
ONET_FILE = "facenet_pytorch/data/onet.pt"
LFW_FILE = "skimage/data/lfw_subset.npy"
INPUT_SIZE = 48
PROVENANCE = {
    "model": "MTCNN ONet, face / not-face logits (class 1 = face)",
    "package": "facenet-pytorch %s (PyPI), file %s" % (FACENET[1], ONET_FILE),
    "licence": "MIT (facenet-pytorch, Copyright (c) 2019 Timothy Esler)",
    "citation": "K. Zhang, Z. Zhang, Z. Li, Y. Qiao: Joint Face Detection and Alignment using Multitask "
                "Cascaded Convolutional Networks, IEEE Signal Processing Letters 23(10), 2016",
    "data": "scikit-image %s (PyPI), skimage.data.lfw_subset() (%s): 100 faces then 100 non-faces, 25x25 grey, "
            "from Labeled Faces in the Wild (Huang et al. 2007)" % (SCIKIT_IMAGE[1], LFW_FILE),
}


class PyPIUnreachable(RuntimeError):
    """pip could not download a wheel (no network, or no PyPI)."""


def fetch_wheels(cache: Path) -> Dict[str, Path]:
    """The two wheels in ``cache`` (downloaded there with pip unless already present)."""
    cache.mkdir(parents=True, exist_ok=True)
    found = {}
    for name, version in (FACENET, SCIKIT_IMAGE):
        pattern = name.replace("-", "_") + "-" + version + "-*.whl"
        wheels = sorted(cache.glob(pattern))
        if not wheels:
            done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                                   "-q", "-d", str(cache), "%s==%s" % (name, version)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
            wheels = sorted(cache.glob(pattern))
            if done.returncode != 0 or not wheels:
                raise PyPIUnreachable("pip download %s==%s failed: %s" % (name, version,
                                                                          done.stderr.decode()[-500:]))
        found[name] = wheels[0]
    return found


def _onet_class():
    import torch
    from torch import nn

    class ONet(nn.Module):
        """facenet_pytorch.models.mtcnn.ONet's layers, with the face logits as the only output."""

        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 32, kernel_size=3)
            self.prelu1 = nn.PReLU(32)
            self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
            self.prelu2 = nn.PReLU(64)
            self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv3 = nn.Conv2d(64, 64, kernel_size=3)
            self.prelu3 = nn.PReLU(64)
            self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
            self.conv4 = nn.Conv2d(64, 128, kernel_size=2)
            self.prelu4 = nn.PReLU(128)
            self.dense5 = nn.Linear(1152, 256)
            self.prelu5 = nn.PReLU(256)
            self.dense6_1 = nn.Linear(256, 2)

        def forward(self, x):
            x = self.pool1(self.prelu1(self.conv1(x)))
            x = self.pool2(self.prelu2(self.conv2(x)))
            x = self.pool3(self.prelu3(self.conv3(x)))
            x = self.prelu4(self.conv4(x))
            x = x.permute(0, 3, 2, 1).contiguous()  # the ported weights expect TensorFlow's flattening order
            x = self.prelu5(self.dense5(x.view(x.size(0), -1)))
            return self.dense6_1(x)

    return ONet, torch


def onet_onnx(facenet_wheel: Path, out: Path) -> Path:
    """Export the pretrained ONet face classifier to ``out`` (ONNX, input ``image`` (N, 3, 48, 48))."""
    import io
    import warnings

    ONet, torch = _onet_class()
    with zipfile.ZipFile(str(facenet_wheel)) as wheel:
        state = torch.load(io.BytesIO(wheel.read(ONET_FILE)), map_location="cpu", weights_only=True)
    model = ONet()
    # dense6_2 / dense6_3 are the box and landmark heads: the classifier has no use for them.
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or sorted(unexpected) != ["dense6_2.bias", "dense6_2.weight", "dense6_3.bias", "dense6_3.weight"]:
        raise ValueError("%s: unexpected ONet state dict (missing %s, unexpected %s)" % (ONET_FILE, missing,
                                                                                           unexpected))
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE), str(out), opset_version=17,
                          dynamo=False, input_names=["image"], output_names=["face_logits"],
                          dynamic_axes={"image": {0: "batch"}, "face_logits": {0: "batch"}})
    return out


def preprocess(grey: np.ndarray) -> np.ndarray:
    """(N, H, W) grey in [0, 1] -> float32 (N, 3, 48, 48) as ONet reads it."""
    import torch

    x = torch.from_numpy(np.asarray(grey, dtype=np.float32))[:, None]
    x = torch.nn.functional.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
    x = (x * 255.0 - 127.5) / 128.0
    return np.ascontiguousarray(x.repeat(1, 3, 1, 1).numpy(), dtype=np.float32)


def lfw_subset(scikit_image_wheel: Path) -> Tuple[np.ndarray, np.ndarray]:
    """The 200 images, preprocessed for ONet, and their labels (1 = face, 0 = not a face)."""
    import io

    with zipfile.ZipFile(str(scikit_image_wheel)) as wheel:
        grey = np.load(io.BytesIO(wheel.read(LFW_FILE)), allow_pickle=False)
    if grey.shape != (200, 25, 25):
        raise ValueError("%s: expected 200 images of 25x25, got %s" % (LFW_FILE, grey.shape))
    labels = np.array([1] * 100 + [0] * 100, dtype=np.int64)
    return preprocess(grey), labels


def walkthrough_files(images: np.ndarray, labels: np.ndarray, seed: int = 0) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    """The walkthrough's three files from the 200 images: ``x`` for add-exits (50 faces + 50 non-faces), ``val``
    for build-policy (25 + 25) and ``test`` for the board's stream (25 + 25), disjoint, chosen per class by a
    seeded permutation; each part also holds the mirror image of each of its images (a face mirrored is still a
    face), so build-policy gets the 100 images it needs. A mirror pair always stays in one part."""
    rng = np.random.RandomState(seed)
    parts = {"x": [], "val": [], "test": []}
    for label in (1, 0):
        order = rng.permutation(np.flatnonzero(labels == label))
        parts["x"].append(order[:50])
        parts["val"].append(order[50:75])
        parts["test"].append(order[75:100])
    files = {}
    for name, chosen in parts.items():
        index = rng.permutation(np.concatenate(chosen))
        both = np.concatenate([images[index], images[index][:, :, :, ::-1]])
        both_labels = np.concatenate([labels[index], labels[index]])
        order = rng.permutation(len(both_labels))
        files[name] = (np.ascontiguousarray(both[order]), both_labels[order])
    return files
