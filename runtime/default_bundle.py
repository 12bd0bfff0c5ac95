"""The embedded default bundle and its held-out images, shipped inside the package.

``mnist-branchy`` is a small CNN for 28x28 grayscale digits with two early exits, trained on real
MNIST images; ``edgesplit build-default`` regenerates both files. Inputs are float32 pixels in
[0, 1], shape (N, 1, 28, 28). The held-out images come from the test split only (never trained on,
never used to choose thresholds). ``DEMO_POLICY_FILE`` is the frozen policy ``edgesplit demo`` runs
on it (``edgesplit build-policy`` regenerates it).
"""
import os
from pathlib import Path
from typing import Tuple

import numpy as np

from edgesplit.runtime.bundle.store import load_bundle
from edgesplit.runtime.errors import BundleError
from edgesplit.runtime.shipped_policy import DEMO_POLICY_FILE  # noqa: F401 (the demo's policy, beside its bundle)

ASSETS_DIR = Path(__file__).resolve().parent / "assets"
BUNDLE_DIR_NAME = "mnist_branchy"
HELDOUT_FILE_NAME = "mnist_heldout.npz"
DEFAULT_BUNDLE = "default"  # what users type for the embedded bundle
_REGENERATE = ("regenerate it from a source checkout with 'edgesplit build-default --out runtime/assets' (needs the "
               "codegen extra)")


def assets_dir() -> Path:
    return ASSETS_DIR


def default_bundle_path() -> Path:
    """Directory of the embedded default bundle (load it with runtime.bundle.store.load_bundle)."""
    path = ASSETS_DIR / BUNDLE_DIR_NAME
    if not path.is_dir():
        raise BundleError("%s: the embedded default bundle is missing from this installation; %s"
                          % (path, _REGENERATE))
    return path


def resolve_bundle(name: str):
    """Load the bundle directory ``name``, or the embedded bundle for ``default`` (unless a directory
    of that name exists here)."""
    if name == DEFAULT_BUNDLE and not os.path.exists(name):
        return load_bundle(default_bundle_path())
    return load_bundle(name)


def load_heldout() -> Tuple[np.ndarray, np.ndarray]:
    """Held-out test images (float32, (N, 1, 28, 28), [0, 1]) and their labels (int64, (N,))."""
    path = ASSETS_DIR / HELDOUT_FILE_NAME
    try:
        with np.load(str(path), allow_pickle=False) as data:
            images, labels = data["images"], data["labels"]
    except FileNotFoundError:
        raise BundleError("%s: held-out images are missing from this installation; %s" % (path, _REGENERATE)) from None
    except (OSError, ValueError, KeyError) as exc:
        raise BundleError("%s: cannot read held-out images (%s); %s" % (path, exc, _REGENERATE)) from None
    if images.dtype != np.float32 or images.ndim != 4 or images.shape[1:] != (1, 28, 28):
        raise BundleError("%s: images must be float32 (N, 1, 28, 28), got %s %s" % (path, images.dtype, images.shape))
    if labels.dtype != np.int64 or labels.shape != (images.shape[0],):
        raise BundleError("%s: labels must be int64 (%d,), got %s %s"
                          % (path, images.shape[0], labels.dtype, labels.shape))
    return images, labels
