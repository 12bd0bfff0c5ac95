"""Energy of a task from power and time.

With one power figure for the task's duration, E = P x t. With samples of power over the task
(the sampler's history), the trapezoidal integral is used; samples outside [start, end] are clipped.
"""
from typing import Optional, Sequence, Tuple


def energy_j(power_w: float, duration_s: float) -> float:
    if duration_s < 0:
        raise ValueError("a task cannot last %r s" % duration_s)
    return power_w * duration_s


def integrate_energy_j(samples: Sequence[Tuple[float, float]], start: float, end: float) -> Optional[float]:
    """Joules between ``start`` and ``end`` from (time s, power W) samples sorted by time.

    Power is held at the nearest sample outside the covered span. None when there are no samples.
    """
    if end < start:
        raise ValueError("end %r is before start %r" % (end, start))
    if not samples:
        return None
    if end == start:
        return 0.0
    points = [(t, p) for t, p in samples if start < t < end]
    before = [s for s in samples if s[0] <= start]
    after = [s for s in samples if s[0] >= end]
    first = before[-1][1] if before else (points[0][1] if points else after[0][1])
    last = after[0][1] if after else (points[-1][1] if points else before[-1][1])
    curve = [(start, first)] + points + [(end, last)]
    return sum((t1 - t0) * (p0 + p1) / 2.0 for (t0, p0), (t1, p1) in zip(curve, curve[1:]))
