"""Tensor framing shared by the peer wire protocol and the local API.

A message is ``[header, tensor_0, ..., tensor_n-1]``: a small UTF-8 JSON object whose ``tensors``
list gives each tensor's ``name``, ``dtype`` and ``shape``, then one raw C-order frame per tensor.
Arrays go out without copies and come back with ``np.frombuffer`` on the received buffer.

Nothing received is trusted: every check below runs before a buffer becomes an array (unique
names, a known dtype, a bounded number of non-negative dimensions none larger than the byte limit,
the running byte total, the frame count, each frame's length = dtype x shape). A failed check
raises ``FrameRefused`` with a short ``reason`` code and a ``detail`` naming the field
(``tensors[1].shape``); each protocol turns it into its own refusal.
"""
import json
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import numpy as np

# The dtypes a bundle manifest may declare and a message may carry; anything else is refused.
DTYPES = ("float32", "float16", "float64", "int8", "uint8", "int32", "int64", "bool")
# Looked up per tensor per message: numpy's dtype.name and np.dtype(str) cost microseconds each.
_NAME_OF = {np.dtype(name): name for name in DTYPES}
_NUMPY_DTYPE = {name: np.dtype(name) for name in DTYPES}
_ITEMSIZE = {name: np.dtype(name).itemsize for name in DTYPES}
_HEADER_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


class FrameRefused(Exception):
    """A received header or frame failed a check. ``reason``: short code; ``detail``: what and where."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class TensorLimits:
    """What a receiver accepts. ``max_total_bytes`` also bounds each single dimension."""

    max_tensors: int
    max_dims: int
    max_total_bytes: int
    max_name_chars: int


@dataclass(frozen=True)
class WireTensor:
    name: str
    dtype: str
    shape: Tuple[int, ...]

    @property
    def nbytes(self) -> int:
        count = _ITEMSIZE.get(self.dtype) or np.dtype(self.dtype).itemsize
        for dim in self.shape:
            count *= dim
        return count

    def to_json(self) -> Dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}


# ---------------------------------------------------------------- sending


def tensor_frames(tensors: Mapping[str, np.ndarray]) -> Tuple[List[Dict[str, Any]], List[Any]]:
    """(header ``tensors`` entries, frames) for ``send_multipart(..., copy=False)``.

    Raises ValueError for a dtype outside ``DTYPES`` (the receiver would refuse it anyway).
    """
    specs, frames = [], []
    for name, array in tensors.items():
        array = np.asarray(array, order="C")
        dtype = _NAME_OF.get(array.dtype)
        if dtype is None:
            raise ValueError("tensor %r has dtype %s, which the wire does not carry (one of %s)"
                             % (name, array.dtype, ", ".join(DTYPES)))
        specs.append({"name": name, "dtype": dtype, "shape": list(array.shape)})
        # A 0-d array has no useful buffer protocol shape; reshape keeps it zero-copy.
        frames.append(array.reshape(-1) if array.ndim == 0 else array)
    return specs, frames


def dump_header(header: Mapping[str, Any], **json_options: Any) -> bytes:
    if not json_options:
        return _HEADER_ENCODER.encode(header).encode("utf-8")
    return json.dumps(header, separators=(",", ":"), allow_nan=False, **json_options).encode("utf-8")


# ---------------------------------------------------------------- receiving


def frame_buffer(frame: Any) -> Any:
    """The buffer behind a received frame (a zmq.Frame with ``copy=False``) or a bytes-like object."""
    return frame.buffer if hasattr(frame, "buffer") else frame


def frame_len(frame: Any) -> int:
    if isinstance(frame, (bytes, bytearray)):
        return len(frame)
    buffer = frame_buffer(frame)
    return buffer.nbytes if isinstance(buffer, memoryview) else memoryview(buffer).nbytes


def parse_header(frame: Any, max_bytes: int) -> Dict[str, Any]:
    """The header frame as a JSON object, refused when larger than ``max_bytes`` (checked first)."""
    size = frame_len(frame)
    if size > max_bytes:
        raise FrameRefused("too_large", "header frame is %d bytes, the limit is %d" % (size, max_bytes))
    raw = frame if isinstance(frame, bytes) else frame.bytes if hasattr(frame, "bytes") else bytes(frame_buffer(frame))
    try:
        header = json.loads(raw.decode("utf-8"))
    except RecursionError:  # deep nesting: json's C scanner recurses once per level
        raise FrameRefused("bad_header", "header JSON is nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise FrameRefused("bad_header", "header is not UTF-8 JSON: %s" % exc) from None
    if not isinstance(header, dict):
        raise FrameRefused("bad_header", "header must be a JSON object, got %s" % type(header).__name__)
    return header


def tensor_specs(entries: Any, limits: TensorLimits, total_what: str = "") -> List[WireTensor]:
    """Check a header's ``tensors`` list. ``total_what`` names the setting behind the byte limit."""
    if not isinstance(entries, list):
        raise FrameRefused("bad_header", "header field 'tensors' must be a list")
    if len(entries) > limits.max_tensors:
        raise FrameRefused("too_large", "%d tensors, the limit is %d" % (len(entries), limits.max_tensors))
    specs, names, total = [], set(), 0
    for index, entry in enumerate(entries):
        spec = _tensor_spec(entry, "tensors[%d]" % index, names, limits)
        # Python ints do not overflow: a huge shape is caught here, before any allocation.
        total += spec.nbytes
        if total > limits.max_total_bytes:
            raise FrameRefused("too_large", "tensors add up to more than %d bytes%s (at tensors[%d])"
                               % (limits.max_total_bytes, " (%s)" % total_what if total_what else "", index))
        names.add(spec.name)
        specs.append(spec)
    return specs


def _tensor_spec(entry: Any, where: str, names: set, limits: TensorLimits) -> WireTensor:
    # Exactly these three keys (a dict has no duplicates, so three known keys are all of them).
    if not isinstance(entry, dict) or len(entry) != 3 or not ("name" in entry and "dtype" in entry
                                                             and "shape" in entry):
        raise FrameRefused("bad_header", "%s must be an object with exactly name, dtype, shape" % where)
    name, dtype, shape = entry["name"], entry["dtype"], entry["shape"]
    if not isinstance(name, str) or not 0 < len(name) <= limits.max_name_chars or name in names:
        raise FrameRefused("bad_header", "%s.name must be a unique non-empty string of at most %d characters"
                           % (where, limits.max_name_chars))
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise FrameRefused("bad_dtype", "%s.dtype %r is not one of %s" % (where, dtype, ", ".join(DTYPES)))
    if type(shape) is not list or len(shape) > limits.max_dims:
        raise FrameRefused("bad_header", "%s.shape must be a list of at most %d non-negative integers"
                           % (where, limits.max_dims))
    # Exact ints: true/false are refused (JSON decoding gives no other int subclass).
    if not all(type(dim) is int and dim >= 0 for dim in shape):
        raise FrameRefused("bad_header", "%s.shape must be a list of at most %d non-negative integers"
                           % (where, limits.max_dims))
    # With a zero elsewhere a huge dimension passes the byte count but overflows numpy's index
    # type on reshape: no single dimension may exceed the byte limit either.
    if shape and max(shape) > limits.max_total_bytes:
        raise FrameRefused("too_large", "%s.shape has a dimension of more than %d" % (where, limits.max_total_bytes))
    return WireTensor(name, dtype, tuple(shape))


def tensor_arrays(specs: Sequence[WireTensor], frames: Sequence[Any]) -> Dict[str, np.ndarray]:
    """Arrays over the received frames (no copies), once every frame's length is checked."""
    if len(frames) != len(specs):
        raise FrameRefused("frame_count", "header lists %d tensors but %d tensor frames follow"
                           % (len(specs), len(frames)))
    for index, (spec, frame) in enumerate(zip(specs, frames)):
        size = frame_len(frame)
        if size != spec.nbytes:
            raise FrameRefused("size_mismatch", "tensor %r (%s %s) needs %d bytes, frame %d has %d"
                               % (spec.name, spec.dtype, list(spec.shape), spec.nbytes, index + 1, size))
    # np.ndarray over the buffer: what frombuffer + reshape give (read-only, no copy) in one call.
    return {spec.name: np.ndarray(spec.shape, _NUMPY_DTYPE[spec.dtype], frame_buffer(frame))
            for spec, frame in zip(specs, frames)}
