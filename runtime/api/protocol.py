"""The local API's messages: a JSON header frame, then one raw frame per input tensor.

Request (``op`` is ``submit``, ``status``, ``feedback`` or ``ping``)::

    {"v": 1, "op": "submit", "id": 7, "deadline_ms": 200, "label": null,
     "tensors": [{"name": "image", "dtype": "float32", "shape": [1, 1, 28, 28]}]}
    {"v": 1, "op": "feedback", "id": 8, "task_id": 41, "label": 3, "rating": 4.5}

Reply::

    {"v": 1, "id": 7, "status": "ok", "message": "", "task_id": 41, "result": 3, "exit": 1,
     "cut": null, "fallback": false, "latency_ms": 2.1, "policy_id": "..."}

``status`` is one of ``STATUSES``; anything but ``ok`` says why nothing ran (or, for ``error``, why
it failed). A ``status`` request's reply carries the daemon's figures under ``"figures"``. A
``feedback`` request carries ``label`` (an integer), ``rating`` (any finite number: the application's
score of the result, stored as given) or both; one left out keeps what the trace holds.
"""
import json
import math
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

API_VERSION = 1
OPS = ("submit", "status", "feedback", "ping")
# ok: answered. queue_full / draining: refused at once. expired: its deadline passed while queued.
# bad_request: malformed or wrong tensors. unknown_task: feedback for a task the trace does not hold.
# error: the daemon failed running it (see its log).
STATUSES = ("ok", "queue_full", "draining", "expired", "bad_request", "unknown_task", "error")
DTYPES = ("float32", "float16", "float64", "int8", "uint8", "int32", "int64", "bool")
MAX_HEADER_BYTES = 16 * 1024
MAX_TENSORS = 16
ONLY_INPUT = "*"  # tensor name meaning "the model's only input"


class BadMessage(Exception):
    """Internal: why a request is refused with ``bad_request``."""


def encode_request(op: str, request_id: int, fields: Optional[Mapping[str, Any]] = None,
                   tensors: Optional[Mapping[str, np.ndarray]] = None) -> List[Any]:
    specs, frames = [], []
    for name, array in (tensors or {}).items():
        array = np.ascontiguousarray(array)
        specs.append({"name": name, "dtype": array.dtype.name, "shape": list(array.shape)})
        frames.append(array)
    header = dict(fields or {}, v=API_VERSION, op=op, id=int(request_id), tensors=specs)
    return [json.dumps(header, separators=(",", ":"), allow_nan=False).encode("utf-8")] + frames


def encode_reply(request_id: Optional[int], code: str, message: str = "", **fields: Any) -> bytes:
    header = dict(fields, v=API_VERSION, id=request_id, status=code, message=message[:2000])
    return json.dumps(header, separators=(",", ":"), allow_nan=False, default=_plain).encode("utf-8")


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError("%r is not JSON serialisable" % (value,))


def _buffer(frame: Any) -> Any:
    return frame.buffer if hasattr(frame, "buffer") else frame


def decode_header(frame: Any) -> Dict[str, Any]:
    raw = bytes(_buffer(frame))
    if len(raw) > MAX_HEADER_BYTES:
        raise BadMessage("header is %d bytes, the limit is %d" % (len(raw), MAX_HEADER_BYTES))
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadMessage("header is not UTF-8 JSON: %s" % exc) from None
    if not isinstance(header, dict):
        raise BadMessage("header must be a JSON object")
    if header.get("v") != API_VERSION:
        raise BadMessage("API version %r is not supported (the daemon speaks %d): use the same edgesplit "
                         "release for the client" % (header.get("v"), API_VERSION))
    return header


def request_id_of(header: Mapping[str, Any]) -> Optional[int]:
    value = header.get("id")
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2 ** 53 else None


def number_field(header: Mapping[str, Any], key: str, low: float, high: float,
                 integer: bool = False) -> Optional[float]:
    value = header.get(key)
    if value is None:
        return None
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not (
            math.isfinite(value) and low <= value <= high):
        raise BadMessage("%r must be %s in [%s, %s], got %r" % (key, "an integer" if integer else "a number",
                                                               low, high, value))
    return value


def feedback_fields(header: Mapping[str, Any]) -> Tuple[int, Optional[int], Optional[float]]:
    """(task_id, label, rating) of a feedback request; label or rating may be None, not both."""
    task_id = number_field(header, "task_id", 0, 2 ** 53, integer=True)
    if task_id is None:
        raise BadMessage("feedback needs an integer 'task_id'")
    label = number_field(header, "label", -2 ** 31, 2 ** 31, integer=True)
    rating = header.get("rating")
    if rating is not None and (isinstance(rating, bool) or not isinstance(rating, (int, float))
                               or not math.isfinite(rating)):
        raise BadMessage("'rating' must be a finite number, got %r" % (rating,))
    if label is None and rating is None:
        raise BadMessage("feedback for task %d needs 'label' (an integer), 'rating' (a finite number) or both"
                         % task_id)
    return int(task_id), None if label is None else int(label), None if rating is None else float(rating)


def decode_tensors(header: Mapping[str, Any], frames: Sequence[Any], max_bytes: int) -> Dict[str, np.ndarray]:
    specs = header.get("tensors")
    if not isinstance(specs, list) or len(specs) > MAX_TENSORS:
        raise BadMessage("'tensors' must be a list of at most %d entries" % MAX_TENSORS)
    if len(specs) != len(frames):
        raise BadMessage("header lists %d tensors but %d frames follow" % (len(specs), len(frames)))
    arrays, total = {}, 0
    for index, (spec, frame) in enumerate(zip(specs, frames)):
        name, dtype, shape = _spec(spec, index)
        count = 1
        for dim in shape:
            count *= dim
        nbytes = count * np.dtype(dtype).itemsize
        total += nbytes
        if total > max_bytes:
            raise BadMessage("inputs add up to more than %d bytes (api.max_input_mb)" % max_bytes)
        buffer = _buffer(frame)
        size = memoryview(buffer).nbytes
        if size != nbytes:
            raise BadMessage("tensor %r (%s %s) needs %d bytes, its frame has %d" % (name, dtype, shape, nbytes, size))
        arrays[name] = np.frombuffer(buffer, dtype=dtype).reshape(shape)
    return arrays


def _spec(spec: Any, index: int) -> Tuple[str, str, Tuple[int, ...]]:
    where = "tensors[%d]" % index
    if not isinstance(spec, dict) or set(spec) != {"name", "dtype", "shape"}:
        raise BadMessage("%s must be an object with exactly name, dtype, shape" % where)
    name, dtype, shape = spec["name"], spec["dtype"], spec["shape"]
    if not isinstance(name, str) or not 0 < len(name) <= 256:
        raise BadMessage("%s.name must be a non-empty string" % where)
    if dtype not in DTYPES:
        raise BadMessage("%s.dtype %r is not one of %s" % (where, dtype, ", ".join(DTYPES)))
    if not isinstance(shape, list) or len(shape) > 8 or any(
            isinstance(d, bool) or not isinstance(d, int) or d < 0 for d in shape):
        raise BadMessage("%s.shape must be a list of at most 8 non-negative integers" % where)
    return name, dtype, tuple(shape)
