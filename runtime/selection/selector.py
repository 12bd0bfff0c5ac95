"""The variant selector: LinUCB over model variants, learning from the application's late ratings.

Per request, every arm (variant) gets a context vector (``FEATURES``): its expected accuracy, its
latency on this board (measured at start-up, then a moving average of its own tasks) over the
latency bound, its MACs and size relative to the largest variant, that latency times the device's
live load (the board's energy-proxy reading over the highest seen), and a one-hot arm indicator. The learner
(``policies_lite.linucb``) picks the arm with the best upper confidence bound. The context and the
time the answer went out are kept per task; when ``feedback(task_id, rating=...)`` arrives, the
rating updates the learner, weighted by its delay (seconds since the answer / ``delay_unit_s``,
see lambda_v in docs/bandit.md), and the learner's state is saved atomically, so a restart or a
power cut resumes where it stopped. Thread-safe: choices come from the serving thread, ratings from
the API thread.
"""
import collections
import copy
import logging
import os
import statistics
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence, Tuple

import numpy as np

from edgesplit.policies_lite import PolicyError
from edgesplit.policies_lite.linucb import LinUCB, LinUCBConfig
from edgesplit.policies_lite.linucb_state import load_state, save_state
from edgesplit.runtime.errors import EdgesplitError
from edgesplit.runtime.selection.variants import Variant

log = logging.getLogger(__name__)

FEATURES = ("bias", "accuracy", "latency", "macs", "size", "latency_x_load")  # then one "arm:NAME" per variant
LATENCY_SMOOTHING = 0.1      # weight of the newest task in an arm's moving-average latency
PENDING_LIMIT = 20000        # tasks awaiting a rating that are remembered (the oldest are forgotten; ~4 MB)
STARTUP_RUNS = 5             # timed runs per variant at start-up for its first latency figure


def context_features(arm_names: Sequence[str]) -> Tuple[str, ...]:
    return FEATURES + tuple("arm:" + name for name in arm_names)


class SelectorError(EdgesplitError):
    """The selector's state file is unusable or belongs to another configuration."""


@dataclass
class Arm:
    variant: Variant
    loop: Any                 # the DeviceLoop that runs this variant's tasks
    latency_s: float          # moving average of its service time on this board

    @property
    def name(self) -> str:
        return self.variant.name


def measure_startup_latency(executor, runs: int = STARTUP_RUNS) -> float:
    """Median seconds of a whole pass (no early exit) on zeros: the first latency figure, until its own tasks."""
    from edgesplit.runtime.segments.base import zeros_for

    feeds = zeros_for(executor.manifest.inputs)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        executor.run(feeds, thresholds=[-1.0] * len(executor.side_exits))  # every exit off: the whole model
        times.append(time.perf_counter() - start)
    return statistics.median(times)


class VariantSelector:
    def __init__(self, arms: Sequence[Arm], config: LinUCBConfig, latency_bound_s: float,
                 state_path: Optional[str] = None, device_reading: Callable[[], float] = lambda: 0.0,
                 delay_unit_s: float = 1.0, clock: Callable[[], float] = time.monotonic, seed: Optional[int] = None):
        if len(arms) < 2:
            raise SelectorError("a selector needs at least two variants, got %d" % len(arms))
        self.arms = list(arms)
        self.labels = [arm.name for arm in self.arms]
        if tuple(config.features) != context_features(self.labels):
            raise SelectorError("selector features must be %s, got %s" % (context_features(self.labels),
                                                                          config.features))
        self.latency_bound_s = latency_bound_s
        self.state_path = state_path
        self.delay_unit_s = delay_unit_s
        self._device_reading = device_reading
        self._device_peak = 0.0
        self._clock = clock
        self._lock = threading.Lock()
        self._pending = collections.OrderedDict()  # type: Dict[int, Tuple[int, np.ndarray, Optional[float]]]
        self._max_macs = float(max(a.variant.macs for a in self.arms)) or 1.0
        self._max_size = float(max(a.variant.size_bytes for a in self.arms)) or 1.0
        self.unmatched_ratings = 0
        self.recent_arms = collections.deque(maxlen=200)  # type: Deque[str]
        self.learner = LinUCB(config, self._restore(config), seed=seed)

    def _restore(self, config: LinUCBConfig):
        if not self.state_path or not os.path.exists(self.state_path):
            return None
        try:
            state = load_state(self.state_path)
        except PolicyError as exc:
            raise SelectorError("%s (set [linucb] state to another file to keep this one)" % exc) from None
        if state.config != config:
            raise SelectorError("%s: learner state saved with %s, but the config asks for %s (the variants or the "
                                "[linucb] values changed): restore them, or move the file away to start learning afresh"
                                % (self.state_path, state.config, config))
        log.info("selector: resumed from %s (%d ratings)", self.state_path, state.n_feedback)
        return state

    # ------------------------------------------------------------ contexts

    def _device_load(self) -> float:
        try:
            reading = float(self._device_reading())
        except (TypeError, ValueError):
            return 0.0
        if not reading > 0.0 or reading != reading:
            return 0.0
        self._device_peak = max(self._device_peak, reading)
        return reading / self._device_peak

    def contexts(self) -> np.ndarray:
        """(arms, features): every arm's context now."""
        load = self._device_load()
        rows = []
        for i, arm in enumerate(self.arms):
            latency = arm.latency_s / self.latency_bound_s
            # The one-hot arm indicator lets the linear model learn what the shared features miss: two variants
            # alike in accuracy, MACs, size and latency here can still differ for the people rating them.
            rows.append((1.0, arm.variant.accuracy, latency, arm.variant.macs / self._max_macs,
                         arm.variant.size_bytes / self._max_size, latency * load)
                        + tuple(1.0 if j == i else 0.0 for j in range(len(self.arms))))
        return np.array(rows, dtype=np.float64)

    # ------------------------------------------------------------ the serving thread

    def choose(self, task_id: int) -> Arm:
        contexts = self.contexts()
        with self._lock:
            index = self.learner.choose(contexts, self.labels)
            self._pending[task_id] = (index, contexts[index], None)
            while len(self._pending) > PENDING_LIMIT:
                self._pending.popitem(last=False)
        arm = self.arms[index]
        self.recent_arms.append(arm.name)
        return arm

    def answered(self, task_id: int, service_s: float) -> None:
        """The task's answer went out now, after ``service_s`` of work on its arm."""
        with self._lock:
            entry = self._pending.get(task_id)
            if entry is None:
                return
            index, context, _ = entry
            self._pending[task_id] = (index, context, self._clock())
        arm = self.arms[index]
        arm.latency_s += LATENCY_SMOOTHING * (service_s - arm.latency_s)

    def forget(self, task_id: int) -> None:
        """The task failed: no rating can come for it."""
        with self._lock:
            self._pending.pop(task_id, None)

    # ------------------------------------------------------------ the API thread

    def feedback(self, task_id: int, rating: float) -> bool:
        """Fold a rating into the learner; False if this run did not choose an arm for the task."""
        with self._lock:
            entry = self._pending.pop(task_id, None)
            if entry is None or entry[2] is None:
                self.unmatched_ratings += 1
                return False
            index, context, answered_at = entry
            delay = max(0.0, self._clock() - answered_at) / self.delay_unit_s
            self.learner.update(context, rating, delay, label=self.labels[index])
            snapshot = copy.deepcopy(self.learner.state)
        if self.state_path:
            # Written outside the lock: the serving thread keeps choosing during the fsync.
            try:
                save_state(self.state_path, snapshot)
            except OSError as exc:
                log.warning("selector: cannot save the learner state to %s: %s (kept in memory)", self.state_path, exc)
        return True

    def save(self) -> None:
        if self.state_path:
            with self._lock:
                save_state(self.state_path, self.learner.state)

    # ------------------------------------------------------------ figures

    def describe(self) -> Dict[str, Any]:
        contexts = self.contexts()
        with self._lock:
            mean, width = self.learner.upper_bounds(contexts)
            state = self.learner.state
            arms = [{"name": arm.name, "bundle": str(arm.variant.bundle.root),
                     "estimate": round(float(mean[i]), 6), "width": round(float(width[i]), 6),
                     "ucb": round(float(mean[i] + self.learner.config.alpha * width[i]), 6),
                     "chosen": state.chosen.get(arm.name, 0), "rated": state.rated.get(arm.name, 0),
                     "latency_ms": round(1e3 * arm.latency_s, 3),
                     "context": dict(zip(FEATURES, (round(float(v), 6) for v in contexts[i][:len(FEATURES)])))}
                    for i, arm in enumerate(self.arms)]
            return {"kind": "linucb", "features": list(self.learner.config.features), "ratings": state.n_feedback,
                    "theta": [round(float(v), 6) for v in self.learner.theta],
                    "awaiting_rating": len(self._pending), "unmatched_ratings": self.unmatched_ratings,
                    "state": self.state_path or None, "arms": arms,
                    "recent_share": _shares(list(self.recent_arms), self.labels)}


def _shares(recent: List[str], labels: Sequence[str]) -> Dict[str, float]:
    if not recent:
        return {}
    return {name: round(recent.count(name) / len(recent), 3) for name in labels}
