"""Emulated time: a scaled clock, segment runners paced to a board profile, and the link scaling.

``speedup`` runs the whole emulation faster than real time: one emulated second lasts
``1 / speedup`` real seconds. Everything that measures time on the device side (executor,
controller, traces) uses ``Emulation.clock``, which returns emulated seconds; whatever talks to the
real world (ZeroMQ polls, the relay) stays on real time and is converted at the boundary with
``to_real`` / ``to_emulated``. The link relay is given ``bandwidth x speedup`` and ``rtt / speedup``
so a transfer lasts as long in emulated time as it would at the trace's rate.

A paced runner runs the real segment, then sleeps until the board's time for the segment has passed
on the emulated clock: by default its MACs over the board profile's MACs per second; given a measured
profile (``edgesplit profile``), the segment's measured median (see ``segment_times``). If this machine is slower than the emulated board for a
segment, no sleep happens and the real (scaled) time is what is measured. While it sleeps it can call
an ``idle`` hook every few milliseconds (the device loop reads probe replies there), as a board
computing in one thread would receive on another: that time is the board's compute, not the link's.
"""
import math
import time
from typing import Any, Callable, Dict, Mapping, Optional

import numpy as np

from edgesplit.runtime.clocks import sleep_until
from edgesplit.runtime.emulation.board import BoardProfile, EmulationError
from edgesplit.runtime.emulation.segment_times import SegmentTimes
from edgesplit.runtime.segments.base import SegmentRunner
from edgesplit.runtime.segments.registry import open_runner


IDLE_POLL_REAL_S = 0.002  # how often a waiting emulation calls its idle hook (real seconds)


class PacedRunner(SegmentRunner):
    def __init__(self, inner: SegmentRunner, emulated_s: float, emulation: "Emulation",
                 idle: Optional[Callable[[], object]] = None):
        self.inner = inner
        self.segment_id = getattr(inner, "segment_id", "")
        self.emulated_s = emulated_s
        self._emulation = emulation
        self._idle = idle

    def run(self, feeds: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
        start = self._emulation.clock()
        produced = self.inner.run(feeds)
        self._emulation.sleep_until(start + self.emulated_s, self._idle)
        return produced


class Emulation:
    """One emulated board: its clock, its pacing and its energy model.

    ``measured``: a validated profile document (``edgesplit.runtime.profiling.store.load_profile``) whose
    per-segment medians pace the segments instead of the MACs model; ``profile`` still gives the
    energy model (a profile measures time, not power).
    """

    def __init__(self, profile: BoardProfile, workload_scale: float = 1.0, speedup: float = 1.0,
                 real_clock: Callable[[], float] = time.perf_counter, measured: Optional[Dict[str, Any]] = None):
        if not (0 < workload_scale < math.inf and 0 < speedup < math.inf):
            raise EmulationError("workload scale and speedup must be positive and finite, got %r and %r"
                                 % (workload_scale, speedup))
        self.profile = profile
        self.workload_scale = float(workload_scale)
        self.speedup = float(speedup)
        self.times = SegmentTimes(profile, self.workload_scale, measured)
        self._real = real_clock
        self._origin = real_clock()

    def clock(self) -> float:
        """Emulated seconds since the emulation started."""
        return (self._real() - self._origin) * self.speedup

    def clock_at(self, real_t: float) -> float:
        """The emulated clock's reading when the real clock read ``real_t`` (e.g. an API arrival)."""
        return (real_t - self._origin) * self.speedup

    def to_real(self, emulated_s: float) -> float:
        return emulated_s / self.speedup

    def to_emulated(self, real_s: float) -> float:
        return real_s * self.speedup

    def sleep_until(self, emulated_t: float, idle: Optional[Callable[[], object]] = None) -> None:
        """Sleep until the emulated clock reads ``emulated_t``, calling ``idle`` every few ms meanwhile."""
        sleep_until(self.clock, emulated_t, idle, IDLE_POLL_REAL_S, 1.0 / self.speedup)

    def segment_seconds(self, macs: float, segment_id: Optional[str] = None) -> float:
        """Emulated seconds of one call of a segment: measured median x scale if the profile has it, else MACs."""
        return self.times.seconds(macs, segment_id)

    @property
    def label(self) -> str:
        """``<board> (emulated)``, or ``emulated (measured profile <name>)`` when paced from a measured profile."""
        return self.times.label()

    def energy(self, busy_s: float, idle_s: float) -> float:
        return self.profile.energy_mj(busy_s, idle_s)

    def runner_factory(self, inner_factory: Callable[..., SegmentRunner] = open_runner,
                       idle: Optional[Callable[[], object]] = None) -> Callable[..., SegmentRunner]:
        """A runner factory for ``Executor`` that paces every segment (main and exit heads)."""
        def factory(segment, path, threads: Optional[int] = None) -> SegmentRunner:
            return PacedRunner(inner_factory(segment, path, threads=threads),
                               self.segment_seconds(segment.macs, segment.id), self, idle)
        return factory

    def describe(self) -> Dict[str, Any]:
        """The label that goes with every result produced under this emulation."""
        described = {"emulated": True, "label": self.label, "board": self.profile.to_dict(),
                     "workload_scale": self.workload_scale, "speedup": self.speedup}
        described.update(self.times.describe())
        described["energy_model"] = ("energy_mJ = 1000 x (busy_power_w x on-device compute s + idle_power_w x rest "
                                     "of the task's service time s)")
        described["calibration"] = self.profile.provenance.get("macs_per_s", "")
        return described
