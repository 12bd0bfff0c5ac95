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

from edgesplit.runtime.transport.framing import (FrameRefused, TensorLimits, dump_header, parse_header,
                                                 tensor_arrays, tensor_frames, tensor_specs)

API_VERSION = 1
OPS = ("submit", "status", "feedback", "ping")
# ok: answered. queue_full / draining: refused at once. expired: its deadline passed while queued.
# bad_request: malformed or wrong tensors. unknown_task: feedback for a task the trace does not hold.
# error: the daemon failed running it (see its log).
STATUSES = ("ok", "queue_full", "draining", "expired", "bad_request", "unknown_task", "error")
MAX_HEADER_BYTES = 16 * 1024
MAX_TENSORS = 16
MAX_DIMS = 8
MAX_NAME_CHARS = 256
DEADLINE_MS_RANGE = (0.001, 86400e3)  # a request's deadline_ms: 1 us to one day ("submit --deadline-ms" too)
ONLY_INPUT = "*"  # tensor name meaning "the model's only input"


class BadMessage(Exception):
    """Internal: why a request is refused with ``bad_request``."""


def encode_request(op: str, request_id: int, fields: Optional[Mapping[str, Any]] = None,
                   tensors: Optional[Mapping[str, np.ndarray]] = None) -> List[Any]:
    specs, frames = tensor_frames(tensors or {})
    header = dict(fields or {}, v=API_VERSION, op=op, id=int(request_id), tensors=specs)
    return [dump_header(header)] + frames


def encode_reply(request_id: Optional[int], code: str, message: str = "", **fields: Any) -> bytes:
    header = dict(fields, v=API_VERSION, id=request_id, status=code, message=message[:2000])
    return _REPLY_ENCODER.encode(header).encode("utf-8")


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError("%r is not JSON serialisable" % (value,))


# dump_header(header, default=_plain)'s encoder, built once: json.dumps with options builds one per answer (1 us).
_REPLY_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False, default=_plain)


def decode_header(frame: Any) -> Dict[str, Any]:
    try:
        header = parse_header(frame, MAX_HEADER_BYTES)
    except FrameRefused as refused:
        raise BadMessage(refused.detail) from None
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
    # Compared before any float(): an integer literal past float range would raise OverflowError.
    if isinstance(value, bool) or not isinstance(value, kinds) or (
            isinstance(value, float) and not math.isfinite(value)) or not low <= value <= high:
        raise BadMessage("%r must be %s in [%s, %s], got %s" % (key, "an integer" if integer else "a number",
                                                               low, high, _short(value)))
    return value


def _short(value: Any) -> str:
    """A refused value for a message: bounded, one line (the text may end up in a log)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _as_float(value: Any) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf


def feedback_fields(header: Mapping[str, Any]) -> Tuple[int, Optional[int], Optional[float]]:
    """(task_id, label, rating) of a feedback request; label or rating may be None, not both."""
    task_id = number_field(header, "task_id", 0, 2 ** 53, integer=True)
    if task_id is None:
        raise BadMessage("feedback needs an integer 'task_id'")
    label = number_field(header, "label", -2 ** 31, 2 ** 31, integer=True)
    rating = header.get("rating")
    if rating is not None and (isinstance(rating, bool) or not isinstance(rating, (int, float))
                               or not math.isfinite(_as_float(rating))):
        raise BadMessage("'rating' must be a finite number, got %s" % _short(rating))
    if label is None and rating is None:
        raise BadMessage("feedback for task %d needs 'label' (an integer), 'rating' (a finite number) or both"
                         % task_id)
    return int(task_id), None if label is None else int(label), None if rating is None else float(rating)


def decode_tensors(header: Mapping[str, Any], frames: Sequence[Any], max_bytes: int) -> Dict[str, np.ndarray]:
    """The request's tensors over its frames, with the wire's checks; ``max_bytes`` is api.max_input_mb."""
    limits = TensorLimits(MAX_TENSORS, MAX_DIMS, max_bytes, MAX_NAME_CHARS)
    try:
        return tensor_arrays(tensor_specs(header.get("tensors"), limits, "api.max_input_mb"), frames)
    except FrameRefused as refused:
        raise BadMessage(refused.detail) from None
