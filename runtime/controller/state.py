"""EdgeML's state: averages over the state interval, the union of the last q action intervals.

Per task the controller records latency, energy proxy and the bandwidth estimate the task saw; per
action interval it keeps those tasks together. The state is the mean latency, mean energy and mean
bandwidth over the last ``q`` intervals (EdgeML uses q = 3), plus whether the peer is reachable now
(``EDGEML_FEATURES``). Beyond EdgeML's, the state has a memory longer than the window: ``remote_share``, the share
of the last ``REMOTE_WINDOW`` tasks that ran under an action shipping the input (cut 0), whatever became of them
(a fallback counts too). A policy can read from it how much of the accuracy allowance the link has left it: remote
tasks end at the final exit, so where most tasks went remote, a local action may exit earlier.
"""
import collections
import math
from typing import Deque, Dict, List, Optional, Tuple

from edgesplit.runtime.controller.reward import TaskOutcome

EDGEML_FEATURES = ("latency_mean_s", "energy_mean", "bandwidth_mbps", "peer_alive")
FEATURES = EDGEML_FEATURES + ("remote_share",)
DEFAULT_Q = 3
REMOTE_WINDOW = 50  # tasks remote_share looks back over
_isfinite = math.isfinite


def as_state(values: Tuple[float, ...]) -> Dict[str, float]:
    """Values in ``FEATURES`` order -> the mapping the strategy sees (written out: this runs per interval; a test
    holds it to ``FEATURES``)."""
    return {"latency_mean_s": values[0], "energy_mean": values[1], "bandwidth_mbps": values[2],
            "peer_alive": values[3], "remote_share": values[4]}


class StateWindow:
    def __init__(self, q: int = DEFAULT_Q):
        if q < 1:
            raise ValueError("q must be >= 1, got %r" % q)
        self.q = q
        self._intervals = collections.deque(maxlen=q)  # type: Deque[Tuple[TaskOutcome, ...]]  # the tasks of each
        self._remote = collections.deque()  # type: Deque[int]  # per task of the last REMOTE_WINDOW: 1 if shipped
        self._remote_count = 0

    def close_interval(self, tasks: List[TaskOutcome], remote: bool = False) -> None:
        """``tasks`` ran under one action; ``remote``: that action shipped the input (cut 0)."""
        self._intervals.append(tuple(tasks))
        marks = self._remote
        if len(marks) == REMOTE_WINDOW and self._remote_count == (REMOTE_WINDOW if remote else 0):
            return  # a full memory of this same mark (every task of a static action, after the first 50): unchanged
        flag = 1 if remote else 0
        for _ in range(len(tasks)):
            if len(marks) == REMOTE_WINDOW:
                self._remote_count -= marks.popleft()
            marks.append(flag)
            self._remote_count += flag

    def remote_share(self) -> float:
        """The share of the last ``REMOTE_WINDOW`` tasks (fewer at the start; none: 0) run under a cut-0 action."""
        marks = self._remote
        return self._remote_count / len(marks) if marks else 0.0

    def tasks(self) -> List[TaskOutcome]:
        return [t for interval in self._intervals for t in interval]

    def state(self, peer_alive: bool, bandwidth_now_bps: Optional[float]) -> Dict[str, float]:
        """The feature mapping the strategy sees.

        Bandwidth: the mean of the estimates over the window; with none yet, the current estimate;
        with no estimate at all, 0 (unknown is treated as no usable link).
        """
        return as_state(self.state_values(peer_alive, bandwidth_now_bps))

    def state_values(self, peer_alive: bool, bandwidth_now_bps: Optional[float]) -> Tuple[float, ...]:
        """``state``'s values in ``FEATURES`` order (what a transition row stores)."""
        # One pass over the window's tasks (this runs once per interval, every task under a static action), adding
        # as sum() adds on Python 3.8-3.11 (0.0, then each value in order): the same bits as sum() there. (3.12's
        # sum() compensates, so there the last bits may differ from it; the board and the environment share this
        # code, so they agree with each other on every version.)
        latency = energy = 0.0
        count = 0
        samples = []  # type: List[float]
        for interval in self._intervals:
            for t in interval:  # TaskOutcome: (latency_s, energy, bandwidth_bps, ...), read by position
                latency += t[0]
                energy += t[1]
                count += 1
                b = t[2]
                if b > 0 and _isfinite(b):
                    samples.append(b)
        if count:
            latency /= count
            energy /= count
        if samples:
            bandwidth = sum(samples) / len(samples)
        elif bandwidth_now_bps is not None and bandwidth_now_bps > 0 and _isfinite(bandwidth_now_bps):
            bandwidth = bandwidth_now_bps
        else:
            bandwidth = 0.0
        marks = self._remote  # remote_share(), written out: this runs once per interval
        return (latency, energy, bandwidth / 1e6, 1.0 if peer_alive else 0.0,
                self._remote_count / len(marks) if marks else 0.0)
