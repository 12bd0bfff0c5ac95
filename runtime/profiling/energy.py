"""The board's energy proxy, read while a bundle runs and while it does not, for a profile.

A live board feeds its policy energy as the reading its config names (``[policy] energy_proxy``: a
clock in MHz, a power rail in W), averaged over each task (``edgesplit.runtime.sensors.proxy``).
A policy planned for that board must therefore predict the reading, not joules. ``edgesplit profile``
records two means of it beside the timings: **busy** (every segment of the bundle running back to
back for ``seconds``) and **idle** (nothing running for ``seconds``). ``build-policy`` models a task's
reading as their mean weighted by the task's busy and idle time (``proxy_energy_model``).

One mean for all segments, not one per segment: a segment's timed calls last milliseconds, less than
one sensor period (10 Hz on most boards), so a per-segment mean would rest on one sample or none.
"""
import logging
import time
from typing import Any, Callable, Dict, List, Optional

import numpy as np

log = logging.getLogger(__name__)

ENERGY_KEYS = ("proxy", "unit", "source", "busy_mean", "idle_mean", "busy_s", "idle_s", "busy_samples",
               "idle_samples", "rate_hz")
MIN_SAMPLES = 3  # fewer and one sample decides a mean


def _phase(sampler, reading: str, seconds: float, work: Optional[Callable[[], None]]) -> List[float]:
    """The reading's values over at least ``seconds``, prolonged by a few periods when the sampler's phase left
    fewer than MIN_SAMPLES in the span."""
    start = sampler.clock()
    give_up = start + seconds + (MIN_SAMPLES + 2) * sampler.period_s
    while True:
        now = sampler.clock()
        if now - start >= seconds:
            values = [value for _, value in sampler.series(reading, start, now)]
            if len(values) >= MIN_SAMPLES or now >= give_up:
                return values
        if work is None:
            time.sleep(min(0.05, seconds))
        else:
            work()


def measure_proxy(sampler, reading: str, seconds: float, work: Callable[[], None]) -> Optional[Dict[str, Any]]:
    """Means of ``reading`` while idle, then while ``work`` runs in a loop, ``seconds`` each, from a started
    ``Sampler``; None (and a warning) when the reading gave fewer than MIN_SAMPLES values in a phase."""
    seconds = max(seconds, MIN_SAMPLES * sampler.period_s)
    idle_start = sampler.clock()
    idle = _phase(sampler, reading, seconds, None)
    busy_start = sampler.clock()
    busy = _phase(sampler, reading, seconds, work)
    busy_s = sampler.clock() - busy_start
    latest = sampler.latest(reading)
    if len(idle) < MIN_SAMPLES or len(busy) < MIN_SAMPLES or latest is None:
        log.warning("energy proxy %s gave %d idle and %d busy samples in %.1f s each (%s): the profile records no "
                    "energy", reading, len(idle), len(busy), seconds,
                    latest.reason if latest is not None and not latest.available else "too few")
        return None
    return {"proxy": reading, "unit": latest.unit, "source": latest.source, "busy_mean": _round(np.mean(busy)),
            "idle_mean": _round(np.mean(idle)), "busy_s": _round(busy_s), "idle_s": _round(busy_start - idle_start),
            "busy_samples": len(busy), "idle_samples": len(idle), "rate_hz": _round(1.0 / sampler.period_s)}


def proxy_energy_model(energy: Dict[str, Any]) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """(busy_s, idle_s) -> the proxy's predicted mean over a task: busy and idle means weighted by time."""
    busy_mean, idle_mean = float(energy["busy_mean"]), float(energy["idle_mean"])

    def model(busy_s, idle_s):
        busy_s, idle_s = np.asarray(busy_s, dtype=float), np.asarray(idle_s, dtype=float)
        total = busy_s + idle_s
        weighted = busy_mean * busy_s + idle_mean * idle_s
        return np.where(total > 0, weighted / np.where(total > 0, total, 1.0), idle_mean)

    return model


def _round(value: float) -> float:
    return float("%.6g" % value)
