"""A board's energy proxy per task, from the live sensor sampler.

The board config names the reading the policy uses as energy (``[policy] energy_proxy``: the GPU
clock in MHz as EdgeML does, the CPU clock, or a power rail in W). Per task the proxy is the mean of
that reading over the task's span on the sampler's clock; a task shorter than the averaging window
(``[sensors] window_s``) takes the mean over the last window instead, so a 1 ms task between two
10 Hz samples still gets the board's current figure. Its unit is the reading's, which is the board's
``[bounds] energy_unit``. An unavailable reading gives 0 and one warning per change of state.
"""
import logging
from typing import Optional

from edgesplit.runtime.sensors.sampler import Sampler

log = logging.getLogger(__name__)


class EnergyProxy:
    """``proxy(busy_s, idle_s)``: the task's energy proxy; the device loop calls it when a task ends."""

    def __init__(self, sampler: Sampler, reading: str, window_s: float) -> None:
        self.sampler = sampler
        self.reading = reading
        self.window_s = window_s
        self._unavailable_reason = None  # type: Optional[str]

    def __call__(self, busy_s: float, idle_s: float) -> float:
        span = max(busy_s + idle_s, self.window_s)
        value = self.sampler.window_mean(self.reading, span)
        if value is None:
            latest = self.sampler.latest(self.reading)
            if latest is not None and latest.available and latest.value is not None:
                value = latest.value
        if value is None:
            self._note_unavailable()
            return 0.0
        if self._unavailable_reason is not None:
            log.info("energy proxy %s is available again", self.reading)
            self._unavailable_reason = None
        return float(value)

    def _note_unavailable(self) -> None:
        latest = self.sampler.latest(self.reading)
        reason = latest.reason if latest is not None else "not sampled yet"
        if reason != self._unavailable_reason:
            log.warning("energy proxy %s is unavailable (%s): tasks record energy 0 until it is back",
                        self.reading, reason)
            self._unavailable_reason = reason

    def describe(self) -> dict:
        latest = self.sampler.latest(self.reading)
        return {"reading": self.reading, "window_s": self.window_s,
                "available": bool(latest is not None and latest.available),
                "latest": None if latest is None or not latest.available else latest.value,
                "unit": None if latest is None else latest.unit,
                "source": None if latest is None else (latest.source if latest.available else latest.reason)}
