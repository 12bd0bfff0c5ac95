"""The rows the trace store writes, as plain dataclasses, and their JSON encoding."""
import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Sequence

import numpy as np

from edgesplit.runtime.traces.errors import TraceError


@dataclass
class TaskRecord:
    """One task, as the executor finished it. Times in seconds on the run's clock."""

    task_id: int
    arrival_s: float
    latency_s: Optional[float] = None
    deadline_s: Optional[float] = None      # absolute, same clock as arrival_s; None = no deadline
    exit: Optional[int] = None              # exit id taken (manifest exits[].id)
    cut: Optional[int] = None               # cut id offloaded at; None = ran locally
    segment_times: Dict[str, float] = field(default_factory=dict)  # segment id -> seconds
    bytes_sent: int = 0
    transfer_s: Optional[float] = None
    entropies: Dict[str, float] = field(default_factory=dict)      # exit id -> normalised entropy
    bandwidth_bps: Optional[float] = None   # estimate used for the decision
    fallback: bool = False                  # peer slow/gone: finished locally
    result: Optional[int] = None            # predicted class
    label: Optional[int] = None             # true class, if known now (else set_feedback later)
    rating: Optional[float] = None          # the application's rating of the result, any finite number
    policy_id: Optional[str] = None
    run_id: Optional[str] = None            # None: the store's current run
    energy: Optional[float] = None          # energy proxy of the task, in the board's energy unit
    arm: Optional[str] = None               # model variant the selector chose (None: one bundle served)


@dataclass
class TransitionRecord:
    """One (s, a, r, s') step of the controller."""

    step: int
    time_s: float
    state: Sequence[float]
    action: Any                 # JSON-able: list of numbers, dict, or a dataclass (EdgeMLAction...)
    reward: float
    next_state: Sequence[float]
    policy_id: Optional[str] = None
    run_id: Optional[str] = None


def to_jsonable(value: Any) -> Any:
    """Dataclasses, numpy arrays/scalars and tuples -> plain JSON types."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value


def _json_default(value: Any) -> Any:
    """What json cannot write by itself, converted one level at a time (json recurses into the result)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError("%r is not JSON serialisable" % (value,))


_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False, default=_json_default)


def _c_encoder():
    """json's C encoder built once (``JSONEncoder.encode`` builds it per call): the same text, a third of the cost
    for the few small values a task row holds. None where this Python has no C encoder."""
    try:
        from json.encoder import c_make_encoder, encode_basestring_ascii
    except ImportError:
        return None
    if c_make_encoder is None:
        return None
    # markers=None: no cycle check (rows are plain values); a cyclic value fails with RecursionError instead.
    encoder = c_make_encoder(None, _json_default, encode_basestring_ascii, None, ":", ",", False, False, False)
    sample = {"a": [1, 2.5, None, True, "x\u00e9"], "b": {"c": -0.0, "d": 1e-07}}
    try:
        same = "".join(encoder(sample, 0)) == _ENCODER.encode(sample)
    except Exception:  # another Python's private signature: use the public encoder
        return None
    return encoder if same else None


_FAST_ENCODER = _c_encoder()


class JsonText(str):
    """Text ``dumps`` already made (a caller that logs the same value again keeps it): stored as it is."""

    __slots__ = ()


def dumps(value: Any, what: str) -> str:
    # Every task writes a few small dicts and lists: json's C encoder with a default hook writes them
    # in one pass. Keys json refuses (tuples, numpy integers) take the slower converting pass.
    if type(value) is JsonText:
        return str(value)
    try:
        if _FAST_ENCODER is not None:
            return "".join(_FAST_ENCODER(value, 0))
        return _ENCODER.encode(value)
    except TypeError:
        pass
    except ValueError as exc:
        raise TraceError("%s: cannot store as JSON (%s)" % (what, exc)) from None
    except RecursionError:
        raise TraceError("%s: cannot store as JSON (nested too deep, or refers to itself)" % what) from None
    try:
        return json.dumps(to_jsonable(value), separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TraceError("%s: cannot store as JSON (%s)" % (what, exc)) from None


def optional_float(value: Any, what: str) -> Optional[float]:
    if value is None:
        return None
    number = float(value)
    if math.isnan(number):
        return None  # unknown is NULL, not NaN: SQLite has no NaN
    if math.isinf(number):
        raise TraceError("%s is infinite" % what)
    return number


def finite_float(value: Any, what: str) -> float:
    """A rating as given: any finite number (bool is not a number here)."""
    if isinstance(value, bool):
        raise TraceError("%s must be a finite number, got %r" % (what, value))
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TraceError("%s must be a finite number, got %r" % (what, value)) from None
    if not math.isfinite(number):
        raise TraceError("%s must be a finite number, got %r" % (what, value))
    return number


def optional_int(value: Any) -> Optional[int]:
    return None if value is None else int(value)
