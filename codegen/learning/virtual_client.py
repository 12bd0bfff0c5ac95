"""The device's peer client (``runtime/transport/client.py``) on the virtual link: what it sends, when, and
what its link estimator learns from the answers. Times are episode seconds (emulated)."""
import math
import random
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

from edgesplit.runtime.device.pipeline import START_PROBES
from edgesplit.runtime.transport.prober import HANDSHAKE_GRACE_S
from edgesplit.runtime.transport.link_estimate import LinkEstimator

from edgesplit.codegen.learning.virtual_link import Direction, windows_contain

# The device pipeline's peer-client settings (runtime/device/pipeline.py), in emulated seconds.
PROBE_BYTES = 4 * 1024
PROBE_BACKOFF_S = (0.25, 5.0)
PROBE_TIMEOUT_S = 1.0
ESTIMATOR_MIN_BANDWIDTH_BYTES = 3000
ESTIMATOR_STALE_AFTER_S = 1.0


@dataclass
class _Probe:
    sent_at: float
    nbytes: int
    reply_at: float  # inf: no reply will come


class VirtualPeerClient:
    """``PeerClient``'s link-side behaviour (runtime/transport/client.py) on the virtual link.

    Same rules: a reply refreshes the estimator (except the first on a fresh socket), a timeout marks
    the peer down and resets the socket (a pending probe is forgotten, its bytes still on the link),
    while down a plain probe goes out at most every backoff interval (doubling up to 5 s), while up an
    empty probe whenever the newest RTT sample is the estimator's ``rtt_refresh_s`` old, else a probe with
    a 4 KiB payload whenever the estimate is stale. Two sockets, as the device pipeline's client has
    (``runtime/transport/prober.py``): the start-up probes and offloads on one, every later probe on the probe
    thread's, each with its own first answer untimed when its exchange began within ``HANDSHAKE_GRACE_S`` of the
    socket's opening. An offload's timeout replaces the first (and makes a
    pending probe moot); a probe's timeout replaces the second. Not modelled: the probe thread looks at the link
    every 10 ms while an offload is out, so its next probe may go up to 10 ms after the offload's answer (here: at
    once).

    ``static``: the environment's ``StaticModel`` (message sizes, and the scenario's timing figures).
    ``noise``: draws the per-exchange timing noise (and, for the environment, the compute noise).
    """

    def __init__(self, up: Direction, down: Direction, peer_down: Sequence[Tuple[float, float]], peer_s: float,
                 static):
        self.up = up
        self.down = down
        self.peer_down = list(peer_down)
        self.peer_s = peer_s
        self.overhead_s = static.scenario.exchange_overhead_s
        self.jitter_s = static.scenario.exchange_jitter_s
        self.grace_s = static.scenario.timeout_grace_s
        self.excess_s = list(static.scenario.exchange_excess_s)
        self.noise = random.Random(0)
        self.static = static
        self.estimator = LinkEstimator(min_bandwidth_bytes=ESTIMATOR_MIN_BANDWIDTH_BYTES,
                                       stale_after_s=ESTIMATOR_STALE_AFTER_S)
        self.alive = True
        self.fresh = True  # the offloads' socket
        self.probe_fresh = True  # the probe thread's socket
        self.opened_at = -math.inf  # when each was opened: a first exchange within HANDSHAKE_GRACE_S is untimed
        self.probe_opened_at = -math.inf
        self.backoff = PROBE_BACKOFF_S[0]
        self.next_probe_at = 0.0
        self.pending = None  # type: Optional[_Probe]
        self.busy_until = -math.inf  # inside a blocking offload: no upkeep happens before this
        self.last_t = -math.inf  # upkeep has run up to here
        self.probes = 0

    # -------------------------------------------------------- exchanges

    def _exchange(self, t: float, request_bytes: int, reply_bytes: int, service_s: float) -> float:
        arrive = self.up.send(t, request_bytes)
        if windows_contain(self.peer_down, arrive):
            return math.inf
        if len(self.excess_s):
            extra = self.noise.choice(self.excess_s)
        else:
            extra = self.overhead_s + (self.noise.expovariate(1.0 / self.jitter_s) if self.jitter_s > 0 else 0.0)
        return self.down.send(arrive + service_s, reply_bytes) + extra

    def _answered(self, sent: int, received: int, round_trip: float, service_s: float, now: float,
                  probe: bool = False) -> None:
        started = now - round_trip
        if probe and self.probe_fresh:
            self.probe_fresh = False
            timed = started - self.probe_opened_at >= HANDSHAKE_GRACE_S
        elif not probe and self.fresh:
            self.fresh = False
            timed = started - self.opened_at >= HANDSHAKE_GRACE_S
        else:
            timed = True
        if timed:
            self.estimator.observe(sent + received, max(0.0, round_trip - service_s), now)
        self._mark_up()

    def _mark_down(self, now: float) -> None:
        if self.alive:
            self.backoff = PROBE_BACKOFF_S[0]
        else:
            self.backoff = min(self.backoff * 2.0, PROBE_BACKOFF_S[1])
        self.alive = False
        self.next_probe_at = now + self.backoff

    def _mark_up(self) -> None:
        self.alive = True
        self.backoff = PROBE_BACKOFF_S[0]

    def _reset(self, now: float) -> None:
        self.pending = None
        self.fresh = True
        self.opened_at = now

    def _send_probe(self, payload: int, now: float) -> None:
        sent = self.static.probe_request_bytes[payload]
        self.pending = _Probe(now, sent, self._exchange(now, sent, self.static.probe_reply_bytes, 0.0))
        self.probes += 1

    def _probe_reply(self) -> None:
        p = self.pending
        self.pending = None
        self._answered(p.nbytes, self.static.probe_reply_bytes, p.reply_at - p.sent_at, 0.0, p.reply_at, probe=True)

    def start(self, t: float) -> None:
        """The pipeline's first probes (``START_PROBES``: plain twice, then with a payload), at set-up (``t``), on
        the offloads' socket; then the probe thread opens its own."""
        self.opened_at = t
        for payload in START_PROBES:
            sent = self.static.probe_request_bytes[payload]
            reply_at = self._exchange(t, sent, self.static.probe_reply_bytes, 0.0)
            if not math.isfinite(reply_at) or reply_at - t > 1.0:
                self._mark_down(t + 1.0)
                self._reset(t + 1.0)
                self.probe_opened_at = t + 1.0
                return
            self._answered(sent, self.static.probe_reply_bytes, reply_at - t, 0.0, reply_at)
            t = reply_at
        self.probe_opened_at = t

    def advance(self, t: float) -> None:
        """``maybe_probe`` called continuously up to ``t`` (the device calls it every few ms while idle or computing)."""
        self._advance(t)
        self.last_t = max(self.last_t, t)

    def _advance(self, t: float) -> None:
        while True:
            floor = max(self.busy_until, self.last_t)
            p = self.pending
            if p is not None:
                event = max(min(p.reply_at, p.sent_at + PROBE_TIMEOUT_S), floor)
                if event > t:
                    return
                self.last_t = event
                if p.reply_at <= event:
                    self._probe_reply()
                else:
                    self._mark_down(event)
                    self.pending = None
                    self.probe_fresh = True  # the probe thread replaces its own socket
                    self.probe_opened_at = event
                continue
            if not self.alive:
                event = max(self.next_probe_at, floor)
                if event > t:
                    return
                self.last_t = event
                self._send_probe(0, event)
                continue
            age = self.estimator.snapshot(t).age_s
            stale_at = -math.inf if age is None else t - age + ESTIMATOR_STALE_AFTER_S
            last_rtt = self.estimator.last_rtt_at
            rtt_due_at = math.inf if last_rtt is None else last_rtt + self.estimator.rtt_refresh_s
            event = max(min(stale_at, rtt_due_at), floor)
            if event == -math.inf:
                event = t
            if event > t:
                return
            self.last_t = event
            # PeerClient.maybe_probe: an empty probe when the base RTT wants refreshing, else a payload one.
            empty = self.estimator.rtt_probe_due(event) or self.estimator.base_rtt_s is None
            self._send_probe(0 if empty else PROBE_BYTES, event)

    def offload(self, now: float, cut: int, remaining_s: float) -> Tuple[bool, float, int]:
        """One request at ``cut``, waiting at most ``remaining_s``: (answered, time it returns, bytes sent)."""
        if not remaining_s > 0.0:
            return False, now, 0  # PeerClient: "no time left before the deadline", nothing sent
        sent = self.static.request_bytes[cut]
        reply_at = self._exchange(now, sent, self.static.reply_bytes, self.peer_s)
        until = now + remaining_s
        p = self.pending
        if p is not None and p.reply_at <= min(reply_at, until):
            self._probe_reply()  # its thread reads it on arrival, the offload still out
        elif p is not None and p.sent_at + PROBE_TIMEOUT_S <= min(reply_at, until):
            # Its thread gives up on it while the offload is out: the peer is marked down then (and up again if
            # the offload is answered), and the thread replaces its socket.
            self._mark_down(p.sent_at + PROBE_TIMEOUT_S)
            self.pending = None
            self.probe_fresh = True
            self.probe_opened_at = p.sent_at + PROBE_TIMEOUT_S
        grace = self.noise.expovariate(1.0 / self.grace_s) if self.grace_s > 0 else 0.0
        if reply_at <= until + grace:
            self._answered(sent, self.static.reply_bytes, reply_at - now, self.peer_s, reply_at)
            self.busy_until = reply_at
            return True, reply_at, sent
        self._mark_down(until)
        self._reset(until)
        self.estimator.observe_unanswered(sent, remaining_s, until)
        self.busy_until = until
        return False, until, sent

    def bandwidth_bps(self) -> Optional[float]:
        return self.estimator.snapshot(0.0).bandwidth_bps
