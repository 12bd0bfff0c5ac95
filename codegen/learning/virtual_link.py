"""The software link (``runtime/emulation/link/relay.py``) in virtual time: exact transfer times, no sockets.

The relay serialises every byte at the replayed recording's rate (burst 0: a bottleneck that saves
nothing up while idle), one first-in-first-out queue per direction shared by every message, then
delays it by half the base RTT. So a message of ``B`` bytes handed to a direction at ``t`` starts
when the previous one in that direction has left, and leaves when the link has carried ``8 B`` bits
since then: the capacity integrated over the piecewise-constant rate, across step boundaries,
never a single rate. The recording repeats when it runs out, as the relay's does.

Times are episode seconds (emulated); episode time ``t`` is recorded time
``offset_s + t x recording_speed``, so a link replayed twice as fast has steps half as long.
"""
import bisect
import math
from typing import List, Sequence


class LinkSchedule:
    """Capacity over time of one replayed recording (rates already multiplied by the link scale)."""

    def __init__(self, rates_bps: Sequence[float], step_s: float, recording_speed: float = 1.0,
                 offset_s: float = 0.0):
        rates = [max(0.0, float(r)) for r in rates_bps]
        if not rates:
            raise ValueError("a bandwidth recording needs at least one step")
        if not step_s > 0 or not recording_speed > 0:
            raise ValueError("step and recording speed must be positive, got %r and %r" % (step_s, recording_speed))
        self.rates_bps = rates
        self.step_s = float(step_s) / float(recording_speed)  # episode seconds per recorded step
        self.period_s = self.step_s * len(rates)
        self.offset_s = float(offset_s) / float(recording_speed)
        cumulative = [0.0]
        for r in rates:
            cumulative.append(cumulative[-1] + r * self.step_s)
        self._cumulative = cumulative  # bits carried from the cycle's start to each step boundary
        self._total = cumulative[-1]

    def rate_at(self, t: float) -> float:
        """Bits per second at episode time ``t``."""
        u = t + self.offset_s
        k = int(math.floor((u - math.floor(u / self.period_s) * self.period_s) / self.step_s))
        return self.rates_bps[min(k, len(self.rates_bps) - 1)]

    def capacity_bits(self, t: float) -> float:
        """Bits the link could have carried from the (virtual) origin of the recording to ``t``."""
        u = t + self.offset_s
        cycles = math.floor(u / self.period_s)
        rest = u - cycles * self.period_s
        k = min(int(rest / self.step_s), len(self.rates_bps) - 1)
        return cycles * self._total + self._cumulative[k] + self.rates_bps[k] * (rest - k * self.step_s)

    def time_at_capacity(self, bits: float) -> float:
        """The first episode time by which the link has carried ``bits`` (inverse of ``capacity_bits``)."""
        if self._total <= 0.0:
            return math.inf
        cycles = math.floor(bits / self._total)
        rest = bits - cycles * self._total
        i = bisect.bisect_left(self._cumulative, rest)
        if i == 0:
            u = cycles * self.period_s
        else:
            k = i - 1
            u = cycles * self.period_s + k * self.step_s + (rest - self._cumulative[k]) / self.rates_bps[k]
        return u - self.offset_s

    def serialised_by(self, start: float, nbytes: int) -> float:
        """When ``nbytes`` handed to the link at ``start`` have all been serialised."""
        return self.time_at_capacity(self.capacity_bits(start) + 8.0 * nbytes)


class Direction:
    """One direction of the link: a FIFO bottleneck on ``schedule``, then half the base RTT."""

    def __init__(self, schedule: LinkSchedule, one_way_s: float):
        self.schedule = schedule
        self.one_way_s = one_way_s
        self.free_at = -math.inf

    def send(self, t: float, nbytes: int) -> float:
        """Hand ``nbytes`` to the link at ``t``; returns when they arrive at the other end."""
        start = t if t > self.free_at else self.free_at
        done = self.schedule.serialised_by(start, nbytes)
        self.free_at = done
        return done + self.one_way_s


def windows_contain(windows: List[tuple], t: float) -> bool:
    """Whether ``t`` falls in one of the (start, end) windows."""
    for start, end in windows:
        if start <= t < end:
            return True
    return False
