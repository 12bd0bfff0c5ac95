"""Task inputs and exit thresholds as users give them on the command line (``.npy`` files, ``0.2,0.3``)."""
from typing import List, Optional

import numpy as np

from edgesplit.runtime.errors import InputError


def parse_thresholds(text: Optional[str]) -> Optional[List[float]]:
    """``"0.2,0.3"`` -> [0.2, 0.3] (normalised entropies, one per early exit); None stays None."""
    if text is None:
        return None
    values = []
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            raise InputError("--thresholds: %r is not a number" % part) from None
        if not 0.0 <= value <= 1.0:
            raise InputError("--thresholds: %s is outside [0, 1] (normalised entropy)" % part)
        values.append(value)
    return values


_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK"  # an .npz (a zip): np.load would open it as several arrays, or fail inside zipfile if cut short


def read_npy(path: str, what: str = "") -> np.ndarray:
    """One array from a ``.npy`` file, or an InputError naming the file (and the flag, ``what``) and the fix: never a
    traceback for an empty, cut-short, foreign or .npz file, and never a pickle loaded."""
    name = "%s %s" % (what, path) if what else path
    try:
        with open(path, "rb") as handle:
            head = handle.read(len(_NPY_MAGIC))
    except FileNotFoundError:
        raise InputError("%s: no such file" % name) from None
    except OSError as exc:
        raise InputError("%s: cannot read (%s)" % (name, exc.strerror or exc)) from None
    if not head:
        raise InputError("%s: the file is empty, not a .npy array; save inputs with numpy.save" % name)
    if head.startswith(_ZIP_MAGIC):
        raise InputError("%s: holds several arrays (.npz, a zip); pass a single-array .npy (numpy.save)" % name)
    if not head.startswith(_NPY_MAGIC):
        raise InputError("%s: not a .npy array (it starts with %r); save inputs with numpy.save" % (name, head))
    try:
        return np.load(path, allow_pickle=False)
    except MemoryError:
        raise InputError("%s: its header claims an array larger than this machine's memory; save inputs with "
                         "numpy.save" % name) from None
    except (EOFError, OSError, ValueError) as exc:
        text = str(exc)
        if isinstance(exc, EOFError) or "EOF" in text or "Failed to read all data" in text or "cannot reshape" in text:
            raise InputError("%s: the .npy is cut short (%s); copy or save it again with numpy.save"
                             % (name, text)) from None
        raise InputError("%s: not a readable .npy array (%s); save inputs with numpy.save" % (name, text)) from None


def load_inputs(path: str) -> np.ndarray:
    """A single-array ``.npy`` with at least one row along the first (batch) axis."""
    array = read_npy(path)
    if array.ndim == 0 or array.shape[0] == 0:
        raise InputError("%s: needs at least one input along the first (batch) axis, got shape %s"
                         % (path, array.shape))
    return array


def check_label_range(labels: np.ndarray, classes, name: str) -> None:
    """Labels must be class indices of the model's output (0 .. classes-1); ``classes`` None (unknown) checks nothing."""
    if isinstance(classes, int) and len(labels) and (labels.min() < 0 or labels.max() >= classes):
        raise InputError("%s: labels run from %d to %d but the model has %d classes (0..%d): class indices count from "
                         "0, as the model's outputs do" % (name, labels.min(), labels.max(), classes, classes - 1))


def check_model_input(array: np.ndarray, spec, source: str, owner: str, what: str = "inputs") -> None:
    """``array`` as the model input ``spec`` (``name``, ``shape`` batch first with None for any size, ``dtype``) reads
    it: the same rank, the same size on every fixed axis after the batch axis, the same dtype. Else one line naming
    ``source`` (the file), ``owner`` (who reads it: "bundle NAME", "the model") and what to save instead."""
    want = tuple(spec.shape[1:])
    if array.ndim != len(spec.shape) or any(w is not None and g != w for g, w in zip(array.shape[1:], want)):
        raise InputError("%s: %s of shape %s, but %s reads %r of shape %s (batch first; None: any size): apply the "
                         "model's preprocessing and save an array of shape (N, %s) (channels first, say, if it is NCHW)"
                         % (source, what, list(array.shape), owner, spec.name, list(spec.shape),
                            ", ".join("?" if w is None else str(w) for w in want)))
    if array.dtype != np.dtype(spec.dtype):
        raise InputError("%s: %s are %s but %s reads %r as %s: apply the model's preprocessing and convert them "
                         "(np.asarray(x, %r))" % (source, what, array.dtype, owner, spec.name, spec.dtype, spec.dtype))


def check_labels(labels: np.ndarray, images: int, classes, labels_name: str, images_name: str) -> None:
    """One class index per image: a 1-D integer array as long as the images, each in 0 .. classes-1."""
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise InputError("%s: labels must be a 1-D integer array (one class index per image), got %s %s"
                         % (labels_name, labels.dtype, list(labels.shape)))
    if len(labels) != images:
        raise InputError("%s has %d labels but %s has %d %s: one label per image"
                         % (labels_name, len(labels), images_name, images, "image" if images == 1 else "images"))
    check_label_range(labels, classes, labels_name)
