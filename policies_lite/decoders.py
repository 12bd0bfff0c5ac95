"""Turning a policy's output vector into an action the controller applies.

- ``edgeml``: outputs ``[g_0 .. g_{E-1}, c, t]`` -> EdgeMLAction: one entropy threshold per exit in
  [0, 1] (sigmoid of the output, or the output clipped), a cut id and an action interval in
  1..max_interval tasks. As in EdgeML the continuous cut and interval are floored, then clipped to the
  valid range. With ``scale: unit`` the policy outputs c, t in [0, 1] and they are first scaled to
  ``n_cuts`` / ``max_interval``.
- ``task_choice``: one score per enumerated (exit, cut) pair -> the argmax as TaskChoice.

Both work on plain Python floats: for vectors this small that is cheaper than more numpy calls.
"""
import math
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np

from edgesplit.policies_lite.errors import PolicyError
from edgesplit.policies_lite.format import EdgeMLDecoderSpec, TaskChoiceDecoderSpec

_tanh = math.tanh
_floor = math.floor
_isfinite = math.isfinite
_object_new = object.__new__


@dataclass(frozen=True)
class EdgeMLAction:
    """Per-exit entropy thresholds in [0, 1], the cut id, and how many tasks the action holds."""

    thresholds: Tuple[float, ...]
    cut: int
    interval: int


@dataclass(frozen=True)
class TaskChoice:
    """Where this task exits, and the cut it is offloaded at (None: it runs locally)."""

    exit: int
    cut: Optional[int]


def _new_edgeml_action(thresholds: Tuple[float, ...], cut: int, interval: int) -> EdgeMLAction:
    # What the frozen dataclass's __init__ does, minus three object.__setattr__ calls (3x faster on
    # Python 3.8; this runs once per decision).
    action = _object_new(EdgeMLAction)
    fields = action.__dict__
    fields["thresholds"] = thresholds
    fields["cut"] = cut
    fields["interval"] = interval
    return action


def _not_finite(values: Sequence[float]) -> PolicyError:
    return PolicyError("policy output is not finite (%r): an input feature is NaN/infinite or far outside "
                       "the range the policy was trained on" % (list(values),))


def _sigmoid_all(values: Sequence[float]) -> Tuple[float, ...]:
    # 0.5 + 0.5 tanh(v / 2) is the logistic function without math.exp's overflow on large |v|.
    return tuple([0.5 + 0.5 * _tanh(0.5 * v) for v in values])


def _clip01_all(values: Sequence[float]) -> Tuple[float, ...]:
    return tuple([0.0 if v < 0.0 else (1.0 if v > 1.0 else v) for v in values])


class EdgeMLDecoder:
    def __init__(self, spec: EdgeMLDecoderSpec):
        self.spec = spec
        self._n_exits = spec.n_exits
        self._last_cut = spec.n_cuts - 1
        self._max_interval = spec.max_interval
        self._squash = _sigmoid_all if spec.thresholds == "sigmoid" else _clip01_all
        self._unit = spec.scale == "unit"

    def __call__(self, output: np.ndarray) -> EdgeMLAction:
        values = output.tolist()
        if not _isfinite(sum(values)):  # NaN and inf survive the sum
            raise _not_finite(values)
        n_exits = self._n_exits
        cut_value, interval_value = values[n_exits], values[n_exits + 1]
        if self._unit:
            cut_value *= self._last_cut + 1
            interval_value = 1.0 + interval_value * self._max_interval
        cut = min(max(_floor(cut_value), 0), self._last_cut)
        interval = min(max(_floor(interval_value), 1), self._max_interval)
        return _new_edgeml_action(self._squash(values[:n_exits]), cut, interval)


class TaskChoiceDecoder:
    def __init__(self, spec: TaskChoiceDecoderSpec):
        self.spec = spec
        self._choices = [TaskChoice(e, c) for e, c in spec.choices]

    def __call__(self, output: np.ndarray) -> TaskChoice:
        best = int(output.argmax())
        if not _isfinite(output[best]):  # argmax lands on the first NaN if there is one
            raise _not_finite(output.tolist())
        return self._choices[best]


def make_decoder(spec):
    if isinstance(spec, EdgeMLDecoderSpec):
        return EdgeMLDecoder(spec)
    if isinstance(spec, TaskChoiceDecoderSpec):
        return TaskChoiceDecoder(spec)
    raise PolicyError("unknown decoder spec %r" % (spec,))
