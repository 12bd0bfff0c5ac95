"""EdgeML's state: averages over the state interval, the union of the last q action intervals.

Per task the controller records latency, energy proxy and the bandwidth estimate the task saw; per
action interval it keeps those tasks together. The state is the mean latency, mean energy and mean
bandwidth over the last ``q`` intervals (EdgeML uses q = 3), plus whether the peer is reachable now.
"""
import collections
import math
from dataclasses import dataclass
from typing import Deque, Dict, List, Optional, Tuple

from edgesplit.runtime.controller.reward import TaskOutcome

FEATURES = ("latency_mean_s", "energy_mean", "bandwidth_mbps", "peer_alive")
DEFAULT_Q = 3
_isfinite = math.isfinite


@dataclass
class Interval:
    """The tasks run under one action."""

    tasks: List[TaskOutcome]

    def bandwidths(self) -> List[float]:
        return [t.bandwidth_bps for t in self.tasks if t.bandwidth_bps > 0 and math.isfinite(t.bandwidth_bps)]


def as_state(values: Tuple[float, ...]) -> Dict[str, float]:
    """Values in ``FEATURES`` order -> the mapping the strategy sees (written out: this runs per interval; a test
    holds it to ``FEATURES``)."""
    return {"latency_mean_s": values[0], "energy_mean": values[1], "bandwidth_mbps": values[2],
            "peer_alive": values[3]}


class StateWindow:
    def __init__(self, q: int = DEFAULT_Q):
        if q < 1:
            raise ValueError("q must be >= 1, got %r" % q)
        self.q = q
        self._intervals = collections.deque(maxlen=q)  # type: Deque[Interval]

    def close_interval(self, tasks: List[TaskOutcome]) -> None:
        self._intervals.append(Interval(list(tasks)))

    def tasks(self) -> List[TaskOutcome]:
        return [t for interval in self._intervals for t in interval.tasks]

    def state(self, peer_alive: bool, bandwidth_now_bps: Optional[float]) -> Dict[str, float]:
        """The feature mapping the strategy sees.

        Bandwidth: the mean of the estimates over the window; with none yet, the current estimate;
        with no estimate at all, 0 (unknown is treated as no usable link).
        """
        return as_state(self.state_values(peer_alive, bandwidth_now_bps))

    def state_values(self, peer_alive: bool, bandwidth_now_bps: Optional[float]) -> Tuple[float, ...]:
        """``state``'s values in ``FEATURES`` order (what a transition row stores)."""
        # One pass over the window's tasks (this runs once per interval, every task under a static action);
        # sum() over the same values in the same order as ever, so the state is the same to the last bit.
        latencies, energies, samples = [], [], []  # type: List[float], List[float], List[float]
        for interval in self._intervals:
            for t in interval.tasks:
                latencies.append(t.latency_s)
                energies.append(t.energy)
                b = t.bandwidth_bps
                if b > 0 and _isfinite(b):
                    samples.append(b)
        latency = sum(latencies) / len(latencies) if latencies else 0.0
        energy = sum(energies) / len(energies) if energies else 0.0
        if samples:
            bandwidth = sum(samples) / len(samples)
        elif bandwidth_now_bps is not None and bandwidth_now_bps > 0 and _isfinite(bandwidth_now_bps):
            bandwidth = bandwidth_now_bps
        else:
            bandwidth = 0.0
        return (latency, energy, bandwidth / 1e6, 1.0 if peer_alive else 0.0)
