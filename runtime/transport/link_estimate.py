"""Bandwidth and RTT to the peer, estimated from the transfers the device makes anyway.

Every reply gives one timing: the round trip minus the peer's own service time is the time the
request and its reply spent on the link. Small messages measure the RTT (their serialisation time
is negligible); large ones measure bandwidth::

    bandwidth = bytes / (time on the link - base RTT)

The base RTT is the minimum over a recent window of RTT samples (propagation does not get shorter,
queueing only adds), the bandwidth an EWMA of per-transfer samples. When no transfer has refreshed
the bandwidth for ``stale_after_s``, ``is_stale`` tells the client to send a probe with a payload. RTT
samples do not count as fresh bandwidth: they arrive every ``rtt_refresh_s`` and, counted, kept a
board that does not offload from ever refreshing its bandwidth (docs/link.md, "What the estimate is
fed").

Only small messages are RTT samples, and a busy device sends none: offloads keep the estimate fresh.
One slow first sample (a low-rate second, a late reply) would then stay the base for the run and
every bandwidth sample would read high (``link time - base`` too small); with no sample at all it
reads low (the RTT counted as serialisation). So ``rtt_probe_due`` asks the client for an empty
probe whenever the newest RTT sample is ``rtt_refresh_s`` old (once there is one), and samples more than ``rtt_max_age_s``
older than the newest leave the minimum (a route whose base really grew is followed; the newest
sample always stays, it is the best base known). See docs/link.md, "Base RTT".

Thread-safe: the peer client's probe thread feeds it while the task's thread feeds it offloads and reads it.
"""
import collections
import math
import threading
from dataclasses import dataclass
from typing import Deque, Optional, Tuple


@dataclass(frozen=True)
class LinkEstimate:
    """A snapshot for the controller. ``None`` means not measured yet."""

    bandwidth_bps: Optional[float]
    rtt_s: Optional[float]
    base_rtt_s: Optional[float]
    samples: int
    age_s: Optional[float]


class LinkEstimator:
    """Passive estimator: feed it ``observe(bytes, link_seconds, now)`` after every reply."""

    def __init__(self, alpha: float = 0.3, rtt_window: int = 32, min_bandwidth_bytes: int = 16 * 1024,
                 max_rtt_bytes: int = 2048, stale_after_s: float = 5.0, rtt_floor_share: float = 0.1,
                 rtt_refresh_s: float = 1.0, rtt_max_age_s: float = 30.0):
        if not 0.0 < alpha <= 1.0:
            raise ValueError("alpha must be in (0, 1], got %r" % alpha)
        if not (rtt_refresh_s > 0.0 and rtt_max_age_s > 0.0):
            raise ValueError("rtt_refresh_s and rtt_max_age_s must be > 0, got %r and %r"
                             % (rtt_refresh_s, rtt_max_age_s))
        self.alpha = alpha
        self.min_bandwidth_bytes = min_bandwidth_bytes
        self.max_rtt_bytes = max_rtt_bytes
        self.stale_after_s = stale_after_s
        # A transfer no slower than the base RTT still took *some* serialisation time: the estimate
        # never divides by less than this share of the measured time (keeps loopback estimates finite).
        self.rtt_floor_share = rtt_floor_share
        self.rtt_refresh_s = rtt_refresh_s
        self.rtt_max_age_s = rtt_max_age_s
        self._rtts = collections.deque(maxlen=rtt_window)  # type: Deque[Tuple[float, float]]  # (at, seconds)
        self._srtt = None  # type: Optional[float]
        self._bandwidth = None  # type: Optional[float]
        self._samples = 0
        self._last_update = None  # type: Optional[float]
        # Every public method holds it (a deque iterated while another thread appends raises); reentrant
        # because observe reads base_rtt_s.
        self._lock = threading.RLock()

    def __getstate__(self) -> dict:
        """Copies and pickles (the environment copies a client's state) leave the lock out and get their own."""
        state = dict(self.__dict__)
        del state["_lock"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()

    @property
    def base_rtt_s(self) -> Optional[float]:
        with self._lock:
            if not self._rtts:
                return None
            # Relative to the newest sample, not the clock: with no new sample the base stays what it was.
            oldest = self._rtts[-1][0] - self.rtt_max_age_s
            return min(rtt for at, rtt in self._rtts if at >= oldest)

    def rtt_probe_due(self, now: float) -> bool:
        """True when the client should send an empty probe: the newest RTT sample is ``rtt_refresh_s`` old.

        Not before the first sample (the client then sends an empty probe only when the estimate is stale):
        a probe sent in the middle of a busy run, on a link that delivers in packet slots (mahimahi), waited
        for its slots and alone would read the base high and every estimate with it (median 2.9x on the
        3 Mbit/s mahimahi test); later refreshes only ever lower the minimum.
        """
        with self._lock:
            return bool(self._rtts) and now - self._rtts[-1][0] >= self.rtt_refresh_s

    @property
    def last_rtt_at(self) -> Optional[float]:
        """When the newest RTT sample was taken (None before the first)."""
        with self._lock:
            return self._rtts[-1][0] if self._rtts else None

    def next_probe_at(self) -> float:
        """When ``rtt_probe_due`` or ``is_stale`` turns true next (-inf: never measured, stale now)."""
        with self._lock:
            if self._last_update is None:
                return -math.inf
            due = self._last_update + self.stale_after_s
            if self._rtts:
                due = min(due, self._rtts[-1][0] + self.rtt_refresh_s)
            return due

    def observe(self, nbytes: int, link_s: float, now: float) -> Optional[float]:
        """Record one transfer of ``nbytes`` (both directions) that spent ``link_s`` on the link.

        Returns the bandwidth sample in bits per second, or None when the transfer was an RTT sample.
        """
        if not (link_s > 0.0 and math.isfinite(link_s)) or nbytes < 0:
            return None
        with self._lock:
            return self._observe(nbytes, link_s, now)

    def _observe(self, nbytes: int, link_s: float, now: float) -> Optional[float]:
        if nbytes <= self.max_rtt_bytes:
            self._rtts.append((now, link_s))
            self._srtt = link_s if self._srtt is None else 0.875 * self._srtt + 0.125 * link_s
            return None
        # A payload too small to measure still was the attempt: counting it keeps a client whose probes are
        # smaller than min_bandwidth_bytes from probing on every call.
        self._last_update = now
        if nbytes < self.min_bandwidth_bytes:
            return None
        base = self.base_rtt_s or 0.0
        serialisation = max(link_s - base, self.rtt_floor_share * link_s)
        sample = 8.0 * nbytes / serialisation
        self._bandwidth = sample if self._bandwidth is None else (
            self.alpha * sample + (1.0 - self.alpha) * self._bandwidth)
        self._samples += 1
        return sample

    def observe_unanswered(self, nbytes: int, waited_s: float, now: float) -> Optional[float]:
        """A request of ``nbytes`` got no reply within ``waited_s``: the link carried less than that.

        The bound ``8 x nbytes / (waited - base RTT)`` is above the true rate (the request, or its
        reply, was still on the link), so the estimate is only ever lowered to it, never raised.
        Without this a link that got too slow to answer in time would keep its last, fast estimate.
        Returns the bound in bits per second (None when ``waited_s`` is not usable).
        """
        if not (waited_s > 0.0 and math.isfinite(waited_s)) or nbytes < self.min_bandwidth_bytes:
            return None
        with self._lock:
            base = self.base_rtt_s or 0.0
            bound = 8.0 * nbytes / max(waited_s - base, self.rtt_floor_share * waited_s)
            if self._bandwidth is None or self._bandwidth > bound:
                self._bandwidth = bound
            # Checked against a transfer either way (the estimate is at most the bound): a 4 KiB probe to refresh it
            # would only take the link from the next offload, which times out the more for it.
            self._last_update = now
            return bound

    def is_stale(self, now: float) -> bool:
        """No transfer with a payload (offload or payload probe) for ``stale_after_s``: RTT samples do not count."""
        with self._lock:
            return self._last_update is None or now - self._last_update >= self.stale_after_s

    def expected_link_s(self, nbytes: int) -> Optional[float]:
        """Predicted time on the link for a transfer of ``nbytes`` (None until both parts are known)."""
        with self._lock:
            base = self.base_rtt_s
            if self._bandwidth is None or base is None:
                return None
            return base + 8.0 * nbytes / self._bandwidth

    def snapshot(self, now: float) -> LinkEstimate:
        with self._lock:
            age = None if self._last_update is None else max(0.0, now - self._last_update)
            return LinkEstimate(self._bandwidth, self._srtt, self.base_rtt_s, self._samples, age)
