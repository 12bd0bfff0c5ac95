"""The wire format between a device (ZeroMQ DEALER) and a peer (ZeroMQ ROUTER).

A request is a multipart message ``[header, tensor_0, ..., tensor_n-1]``; a reply has the same
shape. The header is a small UTF-8 JSON object; every tensor travels as one raw frame (C order)
described by the header's ``tensors`` list. Frames are sent with ``copy=False`` and read back with
``np.frombuffer`` on the frame's buffer, so a tensor is never copied in Python.

Nothing received is trusted: ``decode_request``/``decode_reply`` check the header's size, every
field's type, the dtype whitelist, the frame count and each frame's byte length against dtype x
shape, and the configured limits, *before* any buffer is turned into an array. Failures are values
(``WireError``), never exceptions, so one bad message cannot stop a peer serving the others.

Request header (``kind`` is ``infer`` or ``probe``)::

    {"v": 1, "kind": "infer", "id": 17, "bundle": "<sha256>", "cut": 2,
     "thresholds": [0.3, 0.5] | null, "use_exits": true, "deadline_s": 0.180,
     "tensors": [{"name": "h2", "dtype": "float32", "shape": [1, 16, 7, 7]}]}

A probe carries ``cut`` 0, no thresholds and zero or one ``uint8`` payload frame (to measure the
uplink). Reply header::

    {"v": 1, "id": 17, "status": "ok", "message": "", "exit": 3, "compute_s": 0.0021,
     "service_s": 0.0025, "tensors": [{"name": "logits", "dtype": "float32", "shape": [1, 10]}]}

``compute_s`` is the peer's model time, ``service_s`` its time from receiving the request to
sending the reply; the device subtracts ``service_s`` from the round trip to get the time on the
wire. ``deadline_s`` is the time the device still allows, in seconds, when it sends: no clock
synchronisation is needed.
"""
import json
import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

PROTOCOL_VERSION = 1
KINDS = ("infer", "probe")
STATUSES = ("ok", "bundle_mismatch", "bad_request", "overloaded", "expired", "error")
# The manifest's dtypes: anything else is refused before a buffer is touched.
DTYPES = ("float32", "float16", "float64", "int8", "uint8", "int32", "int64", "bool")
PROBE_PAYLOAD = "payload"
_MAX_ID = 2 ** 53


@dataclass(frozen=True)
class Limits:
    """What a receiver accepts. ``max_total_bytes`` also bounds each single frame."""

    max_header_bytes: int = 16 * 1024
    max_tensors: int = 32
    max_dims: int = 8
    max_total_bytes: int = 64 * 1024 * 1024
    max_name_chars: int = 256
    max_thresholds: int = 64
    max_message_chars: int = 1024


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class WireError:
    """Why a message was refused: ``reason`` is a short code, ``detail`` says what and where."""

    reason: str
    detail: str
    request_id: Optional[int] = None

    def __str__(self) -> str:
        return "%s: %s" % (self.reason, self.detail)


@dataclass(frozen=True)
class WireTensor:
    name: str
    dtype: str
    shape: Tuple[int, ...]

    @property
    def nbytes(self) -> int:
        count = 1
        for dim in self.shape:
            count *= dim
        return count * np.dtype(self.dtype).itemsize

    def to_json(self) -> Dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}


@dataclass
class Request:
    request_id: int
    kind: str
    bundle: str
    cut: int
    deadline_s: float
    thresholds: Optional[List[float]] = None
    use_exits: bool = True
    tensors: Dict[str, np.ndarray] = field(default_factory=dict)
    nbytes: int = 0


@dataclass
class Reply:
    request_id: Optional[int]
    status: str
    message: str = ""
    exit_id: Optional[int] = None
    compute_s: float = 0.0
    service_s: float = 0.0
    tensors: Dict[str, np.ndarray] = field(default_factory=dict)
    nbytes: int = 0


# ---------------------------------------------------------------- encoding


def _frames_for(tensors: Mapping[str, np.ndarray]) -> Tuple[List[Dict[str, Any]], List[Any]]:
    specs, frames = [], []
    for name, array in tensors.items():
        array = np.asarray(array, order="C")
        if array.dtype.name not in DTYPES:
            raise ValueError("tensor %r has dtype %s, which the wire does not carry (one of %s)"
                             % (name, array.dtype, ", ".join(DTYPES)))
        specs.append({"name": name, "dtype": array.dtype.name, "shape": list(array.shape)})
        # A 0-d or empty array has no useful buffer protocol shape; reshape keeps it zero-copy.
        frames.append(array.reshape(-1) if array.ndim == 0 else array)
    return specs, frames


def _dump(header: Dict[str, Any]) -> bytes:
    return json.dumps(header, separators=(",", ":"), allow_nan=False).encode("utf-8")


def encode_request(request_id: int, kind: str, bundle: str, cut: int, deadline_s: float,
                   tensors: Mapping[str, np.ndarray], thresholds: Optional[Sequence[float]] = None,
                   use_exits: bool = True) -> List[Any]:
    """Frames for ``socket.send_multipart(frames, copy=False)``: header bytes, then array buffers."""
    specs, frames = _frames_for(tensors)
    header = {"v": PROTOCOL_VERSION, "kind": kind, "id": int(request_id), "bundle": bundle, "cut": int(cut),
              "thresholds": None if thresholds is None else [float(t) for t in thresholds],
              "use_exits": bool(use_exits), "deadline_s": float(deadline_s), "tensors": specs}
    return [_dump(header)] + frames


def encode_reply(request_id: Optional[int], status: str, message: str = "", exit_id: Optional[int] = None,
                 compute_s: float = 0.0, service_s: float = 0.0,
                 tensors: Optional[Mapping[str, np.ndarray]] = None) -> List[Any]:
    specs, frames = _frames_for(tensors or {})
    header = {"v": PROTOCOL_VERSION, "id": request_id, "status": status, "message": message[:1024],
              "exit": exit_id, "compute_s": float(compute_s), "service_s": float(service_s), "tensors": specs}
    return [_dump(header)] + frames


# ---------------------------------------------------------------- decoding


class _Refused(Exception):
    """Internal: carries a WireError out of nested checks; never leaves this module."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _field(header: Dict[str, Any], key: str, kinds, what: str, optional: bool = False) -> Any:
    if key not in header:
        if optional:
            return None
        raise _Refused("bad_header", "header field %r is missing" % key)
    value = header[key]
    if optional and value is None:
        return None
    # bool is an int subclass: a true/false where a number belongs is refused.
    if isinstance(value, bool) and bool not in kinds:
        raise _Refused("bad_header", "header field %r must be %s, got %s" % (key, what, json.dumps(value)))
    if not isinstance(value, kinds):
        raise _Refused("bad_header", "header field %r must be %s, got %s" % (key, what, type(value).__name__))
    return value


def _finite(value: float, key: str, low: float = -math.inf, high: float = math.inf) -> float:
    value = float(value)
    if not (math.isfinite(value) and low <= value <= high):
        raise _Refused("bad_header", "header field %r must be a finite number in [%s, %s], got %r"
                       % (key, low, high, value))
    return value


def _parse_header(frame: Any, limits: Limits) -> Dict[str, Any]:
    raw = _frame_bytes(frame, limits.max_header_bytes)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise _Refused("bad_header", "header is not UTF-8 JSON: %s" % exc) from None
    if not isinstance(header, dict):
        raise _Refused("bad_header", "header must be a JSON object, got %s" % type(header).__name__)
    return header


def _check_version(header: Dict[str, Any]) -> None:
    version = header.get("v")
    if isinstance(version, bool) or version != PROTOCOL_VERSION:
        raise _Refused("bad_version", "protocol version %r is not supported (this side speaks %d): run the "
                       "same edgesplit release on device and peer" % (version, PROTOCOL_VERSION))


def _frame_len(frame: Any) -> int:
    if isinstance(frame, (bytes, bytearray)):
        return len(frame)
    return len(frame.buffer) if hasattr(frame, "buffer") else memoryview(frame).nbytes


def _frame_bytes(frame: Any, limit: int) -> bytes:
    size = _frame_len(frame)
    if size > limit:
        raise _Refused("too_large", "header frame is %d bytes, the limit is %d" % (size, limit))
    return frame if isinstance(frame, bytes) else bytes(frame.buffer if hasattr(frame, "buffer") else frame)


def _tensor_specs(header: Dict[str, Any], limits: Limits) -> List[WireTensor]:
    entries = _field(header, "tensors", (list,), "a list")
    if len(entries) > limits.max_tensors:
        raise _Refused("too_large", "%d tensors, the limit is %d" % (len(entries), limits.max_tensors))
    specs, names, total = [], set(), 0
    for index, entry in enumerate(entries):
        where = "tensors[%d]" % index
        if not isinstance(entry, dict) or set(entry) != {"name", "dtype", "shape"}:
            raise _Refused("bad_header", "%s must be an object with exactly name, dtype, shape" % where)
        name, dtype, shape = entry["name"], entry["dtype"], entry["shape"]
        if not isinstance(name, str) or not 0 < len(name) <= limits.max_name_chars or name in names:
            raise _Refused("bad_header", "%s.name must be a unique non-empty string of at most %d characters"
                           % (where, limits.max_name_chars))
        if not isinstance(dtype, str) or dtype not in DTYPES:
            raise _Refused("bad_dtype", "%s.dtype %r is not one of %s" % (where, dtype, ", ".join(DTYPES)))
        if not isinstance(shape, list) or len(shape) > limits.max_dims or any(
                isinstance(d, bool) or not isinstance(d, int) or d < 0 for d in shape):
            raise _Refused("bad_header", "%s.shape must be a list of at most %d non-negative integers"
                           % (where, limits.max_dims))
        # With a zero elsewhere a huge dimension passes the byte count but overflows numpy's index
        # type on reshape: no single dimension may exceed the byte limit either.
        if any(d > limits.max_total_bytes for d in shape):
            raise _Refused("too_large", "%s.shape has a dimension of more than %d" % (where, limits.max_total_bytes))
        spec = WireTensor(name, dtype, tuple(shape))
        # Python ints do not overflow: a huge shape is caught here, before any allocation.
        total += spec.nbytes
        if total > limits.max_total_bytes:
            raise _Refused("too_large", "tensors add up to more than %d bytes (at %s)"
                           % (limits.max_total_bytes, where))
        names.add(name)
        specs.append(spec)
    return specs


def _arrays(specs: List[WireTensor], frames: Sequence[Any]) -> Dict[str, np.ndarray]:
    if len(frames) != len(specs):
        raise _Refused("frame_count", "header lists %d tensors but %d tensor frames follow"
                       % (len(specs), len(frames)))
    arrays = {}
    for index, (spec, frame) in enumerate(zip(specs, frames)):
        size = _frame_len(frame)
        if size != spec.nbytes:
            raise _Refused("size_mismatch", "tensor %r (%s %s) needs %d bytes, frame %d has %d"
                           % (spec.name, spec.dtype, list(spec.shape), spec.nbytes, index + 1, size))
    for spec, frame in zip(specs, frames):
        buffer = frame.buffer if hasattr(frame, "buffer") else frame
        arrays[spec.name] = np.frombuffer(buffer, dtype=spec.dtype).reshape(spec.shape)
    return arrays


def _request_id(header: Dict[str, Any]) -> Optional[int]:
    value = header.get("id") if isinstance(header, dict) else None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _MAX_ID:
        return None
    return value


def _first_header(frames: Sequence[Any], limits: Limits) -> Dict[str, Any]:
    """The first frame parsed as a header, or _Refused (the version is checked by the caller, after
    it has kept the header, so a refusal can still echo the request id)."""
    if not frames:
        raise _Refused("frame_count", "empty message")
    return _parse_header(frames[0], limits)


def decode_request(frames: Sequence[Any], limits: Limits = DEFAULT_LIMITS):
    """``frames`` without the ROUTER identity. Returns a Request, or a WireError (never raises)."""
    header = None
    try:
        header = _first_header(frames, limits)
        _check_version(header)
        request_id = _request_id(header)
        if request_id is None:
            raise _Refused("bad_header", "header field 'id' must be an integer in [0, 2**53)")
        kind = _field(header, "kind", (str,), "a string")
        if kind not in KINDS:
            raise _Refused("bad_header", "kind %r is not one of %s" % (kind, ", ".join(KINDS)))
        bundle = _field(header, "bundle", (str,), "a string")
        if len(bundle) > 128:
            raise _Refused("bad_header", "header field 'bundle' is longer than 128 characters")
        cut = _field(header, "cut", (int,), "an integer")
        if not 0 <= cut <= 10000:
            raise _Refused("bad_header", "header field 'cut' must be in [0, 10000], got %d" % cut)
        deadline_s = _finite(_field(header, "deadline_s", (int, float), "a number"), "deadline_s", -1e9, 1e6)
        thresholds = _field(header, "thresholds", (list,), "a list or null", optional=True)
        if thresholds is not None:
            if len(thresholds) > limits.max_thresholds or any(
                    isinstance(t, bool) or not isinstance(t, (int, float)) for t in thresholds):
                raise _Refused("bad_header", "thresholds must be a list of at most %d numbers"
                               % limits.max_thresholds)
            thresholds = [_finite(t, "thresholds", 0.0, 1.0) for t in thresholds]
        use_exits = _field(header, "use_exits", (bool,), "true or false")
        specs = _tensor_specs(header, limits)
        if kind == "probe" and (len(specs) > 1 or (specs and specs[0].dtype != "uint8")):
            raise _Refused("bad_header", "a probe carries at most one uint8 payload tensor")
        arrays = _arrays(specs, frames[1:])
    except _Refused as refused:
        return WireError(refused.reason, refused.detail, _request_id(header))
    return Request(request_id, kind, bundle, cut, deadline_s, thresholds, use_exits, arrays,
                   sum(s.nbytes for s in specs))


def decode_reply(frames: Sequence[Any], limits: Limits = DEFAULT_LIMITS):
    """Frames of one reply. Returns a Reply, or a WireError (never raises)."""
    header = None
    try:
        header = _first_header(frames, limits)
        _check_version(header)
        request_id = _request_id(header)
        if request_id is None and header.get("id") is not None:
            raise _Refused("bad_header", "reply id must be an integer in [0, 2**53) or null")
        status = _field(header, "status", (str,), "a string")
        if status not in STATUSES:
            raise _Refused("bad_header", "status %r is not one of %s" % (status, ", ".join(STATUSES)))
        message = _field(header, "message", (str,), "a string")[:limits.max_message_chars]
        exit_id = _field(header, "exit", (int,), "an integer or null", optional=True)
        compute_s = _finite(_field(header, "compute_s", (int, float), "a number"), "compute_s", 0.0, 1e6)
        service_s = _finite(_field(header, "service_s", (int, float), "a number"), "service_s", 0.0, 1e6)
        specs = _tensor_specs(header, limits)
        arrays = _arrays(specs, frames[1:])
    except _Refused as refused:
        return WireError(refused.reason, refused.detail, _request_id(header))
    return Reply(request_id, status, message, exit_id, compute_s, service_s,
                 arrays, sum(s.nbytes for s in specs))


def message_bytes(frames: Sequence[Any]) -> int:
    """Bytes of a multipart message as sent or received (header plus tensor frames)."""
    return sum(_frame_len(f) for f in frames)
