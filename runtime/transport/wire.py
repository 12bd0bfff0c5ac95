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
import functools
import json
import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from edgesplit.runtime.transport.framing import (DTYPES, FrameRefused, TensorLimits, WireTensor, dump_header,
                                                 frame_len, parse_header, tensor_arrays, tensor_frames, tensor_specs)

__all__ = ["DTYPES", "WireTensor", "Limits", "WireError", "Request", "Reply", "encode_request", "encode_reply",
           "decode_request", "decode_reply", "message_bytes"]

PROTOCOL_VERSION = 1
KINDS = ("infer", "probe")
STATUSES = ("ok", "bundle_mismatch", "bad_request", "overloaded", "expired", "error")
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


def encode_request(request_id: int, kind: str, bundle: str, cut: int, deadline_s: float,
                   tensors: Mapping[str, np.ndarray], thresholds: Optional[Sequence[float]] = None,
                   use_exits: bool = True) -> List[Any]:
    """Frames for ``socket.send_multipart(frames, copy=False)``: header bytes, then array buffers."""
    specs, frames = tensor_frames(tensors)
    header = {"v": PROTOCOL_VERSION, "kind": kind, "id": int(request_id), "bundle": bundle, "cut": int(cut),
              "thresholds": None if thresholds is None else [float(t) for t in thresholds],
              "use_exits": bool(use_exits), "deadline_s": float(deadline_s), "tensors": specs}
    return [dump_header(header)] + frames


def encode_reply(request_id: Optional[int], status: str, message: str = "", exit_id: Optional[int] = None,
                 compute_s: float = 0.0, service_s: float = 0.0,
                 tensors: Optional[Mapping[str, np.ndarray]] = None) -> List[Any]:
    specs, frames = tensor_frames(tensors or {})
    return [_reply_header(request_id, status, message, exit_id, compute_s, service_s, specs)] + frames


# The peer sends one reply per request: the header is filled into a template (the same bytes as
# ``dump_header`` of the equivalent dict, which a test checks) instead of a per-reply json.dumps.
_REPLY_TEMPLATE = ('{"v":%d,"id":%%s,"status":%%s,"message":%%s,"exit":%%s,"compute_s":%%s,"service_s":%%s,'
                   '"tensors":[%%s]}' % PROTOCOL_VERSION)
_JSON_STRINGS = {}  # type: Dict[str, str]


def _json_string(text: str) -> str:
    """A JSON string literal, memoised for the few names and statuses a peer repeats."""
    quoted = _JSON_STRINGS.get(text)
    if quoted is None:
        quoted = json.dumps(text)
        if len(_JSON_STRINGS) < 1024:
            _JSON_STRINGS[text] = quoted
    return quoted


def _json_number(value: Any, key: str) -> str:
    if value is None:
        return "null"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("reply field %r is %r: the wire carries finite numbers only" % (key, value))
        return repr(value)
    return str(int(value))


def _reply_header(request_id: Optional[int], status: str, message: str, exit_id: Optional[int],
                  compute_s: float, service_s: float, specs: Sequence[Dict[str, Any]]) -> bytes:
    tensors = ",".join('{"name":%s,"dtype":"%s","shape":[%s]}'
                       % (_json_string(spec["name"]), spec["dtype"], ",".join(str(d) for d in spec["shape"]))
                       for spec in specs)
    text = _REPLY_TEMPLATE % (_json_number(request_id, "id"), _json_string(status),
                              json.dumps(message[:1024]) if message else '""', _json_number(exit_id, "exit"),
                              _json_number(float(compute_s), "compute_s"), _json_number(float(service_s), "service_s"),
                              tensors)
    return text.encode("utf-8")


class OkReplyEncoder:
    """``encoder(request_id, compute_s, service_s, array)`` -> the frames of an ``ok`` reply carrying one
    tensor named ``name`` from exit ``exit_id``: the bytes ``encode_reply`` gives (a test checks), with
    everything but the id, the times and the shape filled in once."""

    def __init__(self, exit_id: int, name: str, dtype: str):
        self.dtype = np.dtype(dtype)
        head = _REPLY_TEMPLATE % ("%s", _json_string("ok"), '""', _json_number(exit_id, "exit"), "%s", "%s",
                                  '{"name":%s,"dtype":"%s","shape":[%%s]}' % (_json_string(name), dtype))
        self._template = head

    def __call__(self, request_id: int, compute_s: float, service_s: float, array: np.ndarray) -> List[Any]:
        if array.dtype != self.dtype:  # not this encoder's reply: the general path checks and names it
            raise ValueError("array dtype %s is not %s" % (array.dtype, self.dtype))
        array = np.asarray(array, order="C")
        header = self._template % (int(request_id), _json_number(float(compute_s), "compute_s"),
                                   _json_number(float(service_s), "service_s"), ",".join(map(str, array.shape)))
        return [header.encode("utf-8"), array.reshape(-1) if array.ndim == 0 else array]

    def rows(self, replies: Sequence[Tuple[int, float, int]], compute_s: float, output: np.ndarray) -> List[List[Any]]:
        """The frames of one ``ok`` reply per (request id, service seconds, rows) in ``replies``, each carrying
        its rows of ``output`` (a batch's result, rows in the order of ``replies``): the frames ``self`` gives
        for each slice, with what the replies share formatted once."""
        if output.dtype != self.dtype:
            raise ValueError("array dtype %s is not %s" % (output.dtype, self.dtype))
        if output.ndim == 0 or output.shape[0] != sum(count for _, _, count in replies):
            raise ValueError("output of shape %s does not hold the %d rows asked for"
                             % (output.shape, sum(count for _, _, count in replies)))
        output = np.asarray(output, order="C")
        compute_text = _json_number(float(compute_s), "compute_s")
        tail = "".join("," + str(dim) for dim in output.shape[1:])
        template = self._template
        frames, start = [], 0
        for request_id, service_s, count in replies:
            header = template % (int(request_id), compute_text, _json_number(float(service_s), "service_s"),
                                 str(count) + tail)
            frames.append([header.encode("utf-8"), output[start:start + count]])
            start += count
        return frames


# ---------------------------------------------------------------- decoding


def _field(header: Dict[str, Any], key: str, kinds, what: str, optional: bool = False) -> Any:
    if key not in header:
        if optional:
            return None
        raise FrameRefused("bad_header", "header field %r is missing" % key)
    value = header[key]
    if type(value) in kinds:  # the usual case, answered at once (json gives exact types; bool is never int here)
        return value
    if optional and value is None:
        return None
    # bool is an int subclass: a true/false where a number belongs is refused.
    if isinstance(value, bool) and bool not in kinds:
        raise FrameRefused("bad_header", "header field %r must be %s, got %s" % (key, what, json.dumps(value)))
    if not isinstance(value, kinds):
        raise FrameRefused("bad_header", "header field %r must be %s, got %s" % (key, what, type(value).__name__))
    return value


def _finite(value: float, key: str, low: float = -math.inf, high: float = math.inf) -> float:
    try:
        value = float(value)
    except OverflowError:  # an integer literal past float range
        raise FrameRefused("bad_header", "header field %r must be a finite number in [%s, %s], got an integer "
                           "of %d digits" % (key, low, high, len(str(abs(value))))) from None
    if not (math.isfinite(value) and low <= value <= high):
        raise FrameRefused("bad_header", "header field %r must be a finite number in [%s, %s], got %r"
                           % (key, low, high, value))
    return value


def _check_version(header: Dict[str, Any]) -> None:
    version = header.get("v")
    if isinstance(version, bool) or version != PROTOCOL_VERSION:
        raise FrameRefused("bad_version", "protocol version %r is not supported (this side speaks %d): run the "
                           "same edgesplit release on device and peer" % (version, PROTOCOL_VERSION))


@functools.lru_cache(maxsize=16)
def _tensor_limits(limits: Limits) -> TensorLimits:
    return TensorLimits(limits.max_tensors, limits.max_dims, limits.max_total_bytes, limits.max_name_chars)


def _tensor_specs(header: Dict[str, Any], limits: Limits) -> List[WireTensor]:
    return tensor_specs(_field(header, "tensors", (list,), "a list"), _tensor_limits(limits))


def _request_id(header: Dict[str, Any]) -> Optional[int]:
    value = header.get("id") if isinstance(header, dict) else None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _MAX_ID:
        return None
    return value


def _first_header(frames: Sequence[Any], limits: Limits) -> Dict[str, Any]:
    """The first frame parsed as a header, or FrameRefused (the version is checked by the caller, after
    it has kept the header, so a refusal can still echo the request id)."""
    if not frames:
        raise FrameRefused("frame_count", "empty message")
    return parse_header(frames[0], limits.max_header_bytes)


def _unexpected(exc: Exception, header: Any) -> WireError:
    return WireError("bad_header", "message could not be decoded (%s)" % type(exc).__name__,
                     _request_id(header) if isinstance(header, dict) else None)


def decode_request(frames: Sequence[Any], limits: Limits = DEFAULT_LIMITS):
    """``frames`` without the ROUTER identity. Returns a Request, or a WireError (never raises)."""
    try:
        request = _usual_request(frames, limits)
    except Exception:  # untrusted bytes: anything unexpected goes the checked way, which words the refusal
        request = None
    return request if request is not None else _checked_request(frames, limits)


_MISSING = object()
# json.loads without its two whitespace scans and type dispatch: the C scanner on the whole text. The usual
# header (``dump_header``'s compact JSON) has no surrounding whitespace; any other text goes the checked way.
_scan_json = json.JSONDecoder().scan_once
_WIRE_DTYPES = {name: np.dtype(name) for name in DTYPES}


def _usual_request(frames: Sequence[Any], limits: Limits) -> Optional[Request]:
    """The usual, well-formed infer request decoded with few calls (a peer pays this per message), or None
    when anything is unusual: ``_checked_request`` then decides, and words any refusal. Every check here is
    at least as strict as there (exact JSON types, the same ranges), so it never accepts what that refuses;
    a test decodes a corpus of hostile headers both ways."""
    if not frames:
        return None
    head = frames[0]
    raw = head if type(head) is bytes else head.bytes  # a zmq.Frame; anything else raises: the checked way
    if type(raw) is not bytes or len(raw) > limits.max_header_bytes:
        return None
    text = raw.decode("utf-8")
    header, end = _scan_json(text, 0)
    if end != len(text) or type(header) is not dict:
        return None
    get = header.get
    request_id, cut, bundle, deadline_s, use_exits = get("id"), get("cut"), get("bundle"), get("deadline_s"), \
        get("use_exits")
    if not (type(get("v")) is int and get("v") == PROTOCOL_VERSION and get("kind") == "infer"
            and type(request_id) is int and 0 <= request_id < _MAX_ID and type(bundle) is str and len(bundle) <= 128
            and type(cut) is int and 0 <= cut <= 10000 and type(use_exits) is bool
            and type(deadline_s) in (int, float)):
        return None
    deadline_s = float(deadline_s)
    if not (math.isfinite(deadline_s) and -1e9 <= deadline_s <= 1e6):
        return None
    thresholds = get("thresholds", _MISSING)
    if thresholds is _MISSING or thresholds is None:
        thresholds = None
    elif type(thresholds) is list and len(thresholds) <= limits.max_thresholds and all(
            type(t) in (int, float) and 0.0 <= t <= 1.0 for t in thresholds):
        thresholds = [float(t) for t in thresholds]
    else:
        return None
    arrays, nbytes = _usual_tensors(get("tensors"), frames, limits)
    if arrays is None:
        return None
    return Request(request_id, "infer", bundle, cut, deadline_s, thresholds, use_exits, arrays, nbytes)


def _usual_tensors(entries: Any, frames: Sequence[Any], limits: Limits):
    """(arrays, bytes) for the usual ``tensors`` list and its frames, or (None, 0) when anything is unusual:
    the checks of ``tensor_specs`` and ``tensor_arrays`` inline, without a WireTensor per tensor."""
    if type(entries) is not list or len(entries) > limits.max_tensors or len(entries) != len(frames) - 1:
        return None, 0
    arrays = {}  # type: Dict[str, np.ndarray]
    total, max_total = 0, limits.max_total_bytes
    for index, entry in enumerate(entries):
        if type(entry) is not dict or len(entry) != 3:
            return None, 0
        name, dtype_name, shape = entry.get("name"), entry.get("dtype"), entry.get("shape")
        if (type(name) is not str or not 0 < len(name) <= limits.max_name_chars or name in arrays
                or type(dtype_name) is not str or type(shape) is not list or len(shape) > limits.max_dims):
            return None, 0
        dtype = _WIRE_DTYPES.get(dtype_name)
        if dtype is None:
            return None, 0
        size = dtype.itemsize
        for dim in shape:
            if type(dim) is not int or not 0 <= dim <= max_total:
                return None, 0
            size *= dim
        total += size
        frame = frames[index + 1]
        buffer = frame if type(frame) is bytes else frame.buffer  # a zmq.Frame's memoryview
        if total > max_total or (len(buffer) if type(buffer) is bytes else buffer.nbytes) != size:
            return None, 0
        arrays[name] = np.ndarray(shape, dtype, buffer)
    return arrays, total


def _checked_request(frames: Sequence[Any], limits: Limits = DEFAULT_LIMITS):
    """Every check one at a time, each refusal naming the field: a Request, or a WireError (never raises)."""
    header = None
    try:
        header = _first_header(frames, limits)
        _check_version(header)
        request_id = _request_id(header)
        if request_id is None:
            raise FrameRefused("bad_header", "header field 'id' must be an integer in [0, 2**53)")
        kind = _field(header, "kind", (str,), "a string")
        if kind not in KINDS:
            raise FrameRefused("bad_header", "kind %r is not one of %s" % (kind, ", ".join(KINDS)))
        bundle = _field(header, "bundle", (str,), "a string")
        if len(bundle) > 128:
            raise FrameRefused("bad_header", "header field 'bundle' is longer than 128 characters")
        cut = _field(header, "cut", (int,), "an integer")
        if not 0 <= cut <= 10000:
            raise FrameRefused("bad_header", "header field 'cut' must be in [0, 10000], got %d" % cut)
        deadline_s = _finite(_field(header, "deadline_s", (int, float), "a number"), "deadline_s", -1e9, 1e6)
        thresholds = _field(header, "thresholds", (list,), "a list or null", optional=True)
        if thresholds is not None:
            if len(thresholds) > limits.max_thresholds or any(
                    isinstance(t, bool) or not isinstance(t, (int, float)) for t in thresholds):
                raise FrameRefused("bad_header", "thresholds must be a list of at most %d numbers"
                                   % limits.max_thresholds)
            thresholds = [_finite(t, "thresholds", 0.0, 1.0) for t in thresholds]
        use_exits = _field(header, "use_exits", (bool,), "true or false")
        specs = _tensor_specs(header, limits)
        if kind == "probe" and (len(specs) > 1 or (specs and specs[0].dtype != "uint8")):
            raise FrameRefused("bad_header", "a probe carries at most one uint8 payload tensor")
        arrays = tensor_arrays(specs, frames[1:])
    except FrameRefused as refused:
        return WireError(refused.reason, refused.detail, _request_id(header))
    except Exception as exc:  # untrusted bytes: whatever a check missed is still a refusal, never a crash
        return _unexpected(exc, header)
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
            raise FrameRefused("bad_header", "reply id must be an integer in [0, 2**53) or null")
        status = _field(header, "status", (str,), "a string")
        if status not in STATUSES:
            raise FrameRefused("bad_header", "status %r is not one of %s" % (status, ", ".join(STATUSES)))
        message = _field(header, "message", (str,), "a string")[:limits.max_message_chars]
        exit_id = _field(header, "exit", (int,), "an integer or null", optional=True)
        compute_s = _finite(_field(header, "compute_s", (int, float), "a number"), "compute_s", 0.0, 1e6)
        service_s = _finite(_field(header, "service_s", (int, float), "a number"), "service_s", 0.0, 1e6)
        specs = _tensor_specs(header, limits)
        arrays = tensor_arrays(specs, frames[1:])
    except FrameRefused as refused:
        return WireError(refused.reason, refused.detail, _request_id(header))
    except Exception as exc:  # untrusted bytes: whatever a check missed is still a refusal, never a crash
        return _unexpected(exc, header)
    return Reply(request_id, status, message, exit_id, compute_s, service_s,
                 arrays, sum(s.nbytes for s in specs))


def message_bytes(frames: Sequence[Any]) -> int:
    """Bytes of a multipart message as sent or received (header plus tensor frames)."""
    return sum(frame_len(f) for f in frames)
