"""The device side of the wire: ship the live tensors at a cut, get the peer's answer as a value.

``PeerClient.offload`` never raises for a network problem. It returns an ``OffloadOutcome`` whose
``status`` is ``ok``, ``timeout`` (no answer within the task's remaining deadline), ``refused`` (the
peer answered but would not run it: other bundle, overloaded, deadline expired on arrival) or
``error``; the caller then finishes the task locally.

Failure handling follows the ZeroMQ guide's Lazy Pirate: the poll timeout is the task's remaining
deadline; after a timeout the socket is closed with LINGER=0 and a fresh one opened, so a late
reply can never be mistaken for a later answer (a reply whose id is not the one awaited is
dropped). ``peer_alive`` turns false after a timeout or refusal; while it is false the caller
skips offloading and calls ``maybe_probe()`` now and then, which sends a cheap probe at most every
backoff interval (0.25 s doubling to 5 s) without blocking. The first answered probe or request
makes ``peer_alive`` true again. The client belongs to one thread (its offloads, ``probe``, ``maybe_probe``).

Probes: ``start_background_probes()`` (what the device pipeline does once its first probes are answered) gives
them a thread and a socket of their own (``runtime/transport/prober.py``), which times each answer when it
arrives, whatever the caller is doing; ``maybe_probe`` then only reports ``peer_alive``. Without it, probe
answers are read whenever the caller next looks (``maybe_probe``, or while an offload waits), so an answer can
sit unread: a reply read more than ``max_unread_s`` after it may have arrived gives the estimator no timing
(its round trip would include that wait: a base RTT read late made every bandwidth sample read high, 3x in the
closed loop's daemon runs; docs/link.md, "What the estimate is fed"), and a board that is never idle never
measures its link (docs/link.md, "A board that is never idle"). Callers that keep a probe in flight look often:
``probe_in_flight`` says when.
"""
import itertools
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
import zmq

from edgesplit.runtime.transport import wire
from edgesplit.runtime.transport.link_estimate import LinkEstimate, LinkEstimator
from edgesplit.runtime.transport.prober import HANDSHAKE_GRACE_S, Prober

log = logging.getLogger(__name__)

Clock = Callable[[], float]

OK, TIMEOUT, REFUSED, ERROR = "ok", "timeout", "refused", "error"
# A reply that may have waited unread longer than this gives no link timing. The device loop and the daemon
# look every 2 ms while a probe is in flight; a scheduler's late wake-up adds about 0.1 ms. The probe thread's
# answers are not held to it: it reads the clock as its poll wakes, which a task holding the GIL can delay by up
# to the interpreter's switch interval (5 ms; measured: estimates 5 % lower, docs/link.md).
MAX_UNREAD_S = 0.003
# Peer statuses after which the device stops offloading until a probe succeeds.
_PEER_UNUSABLE = ("bundle_mismatch", "overloaded")
_PEER_REFUSALS = ("bundle_mismatch", "overloaded", "expired")
# While an offload is in flight the probe thread looks again this often (it sends nothing meanwhile).
_OFFLOAD_NAP_S = 0.01


@dataclass
class OffloadOutcome:
    """What one offload (or probe) came to. Times are seconds; ``None`` when there was no reply."""

    status: str
    request_id: int
    peer_status: Optional[str] = None
    message: str = ""
    exit_id: Optional[int] = None
    outputs: Dict[str, np.ndarray] = field(default_factory=dict)
    peer_compute_s: float = 0.0
    peer_service_s: float = 0.0
    round_trip_s: Optional[float] = None
    transfer_s: Optional[float] = None
    bytes_sent: int = 0
    bytes_received: int = 0

    @property
    def ok(self) -> bool:
        return self.status == OK

    @property
    def output(self) -> Optional[np.ndarray]:
        """The first (usually only) result tensor: the scores of ``exit_id``. Read-only."""
        return next(iter(self.outputs.values())) if self.outputs else None


class LinkUse:
    """Exchanges on the device's uplink, counted across the peer clients that share it (a ``PeerFailover``'s):
    no probe thread sends while any of them has an offload out (both would share the link and each read it
    slower). ``lock`` also covers a probe's send, so an offload cannot begin between the check and the send."""

    def __init__(self):
        self.lock = threading.Lock()
        self.exchanges = 0

    def begin(self) -> None:
        with self.lock:
            self.exchanges += 1

    def end(self) -> None:
        with self.lock:
            self.exchanges -= 1

    @property
    def busy(self) -> bool:
        return self.exchanges > 0


@dataclass
class _PendingProbe:
    request_id: int
    sent_at: float
    nbytes: int


class PeerClient:
    """One DEALER connection to a peer for one bundle. Its offloads, ``probe`` and ``maybe_probe`` belong to one
    thread; the probe thread (``start_background_probes``) shares only the liveness and the estimator, under locks."""

    def __init__(self, address: str, bundle_hash: str, clock: Clock = time.monotonic,
                 context: Optional[zmq.Context] = None, limits: wire.Limits = wire.DEFAULT_LIMITS,
                 estimator: Optional[LinkEstimator] = None, probe_backoff_s: Tuple[float, float] = (0.25, 5.0),
                 probe_timeout_s: float = 1.0, probe_bytes: int = 64 * 1024, curve=None,
                 max_unread_s: float = MAX_UNREAD_S, link_use: Optional[LinkUse] = None):
        self.address = address
        # runtime.security.curve.CurveClientKeys: pins the peer's key; None = plain ZMTP.
        self.curve = curve
        self.bundle_hash = bundle_hash
        self.clock = clock
        self.limits = limits
        self.estimator = estimator or LinkEstimator()
        self.probe_backoff_s = probe_backoff_s
        self.probe_timeout_s = probe_timeout_s
        self.probe_bytes = probe_bytes
        self.max_unread_s = max_unread_s
        self.peer_alive = True
        self.probes_sent = 0
        self._context = context or zmq.Context.instance()
        self._ids = itertools.count(1)
        # Liveness (peer_alive, backoff, the next probe's time, the epoch) is shared with the probe thread.
        self._lock = threading.RLock()
        self._down_epoch = 0  # one more each time the peer is marked down: a probe sent before is moot
        self.link_use = link_use or LinkUse()  # shared by the clients of one device (PeerFailover)
        self._prober = None  # type: Optional[Prober]
        self._backoff = probe_backoff_s[0]
        self._next_probe_at = 0.0
        self._pending_probe = None  # type: Optional[_PendingProbe]
        self._probe_payload = np.zeros(probe_bytes, dtype=np.uint8)
        self._socket = None  # type: Optional[zmq.Socket]
        self._open()

    # ------------------------------------------------------------ socket lifecycle

    def open_socket(self) -> zmq.Socket:
        """A DEALER connected to the peer with this client's options and keys (the probe thread has its own)."""
        sock = self._context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RECONNECT_IVL, 100)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
        sock.setsockopt(zmq.MAXMSGSIZE, self.limits.max_total_bytes + self.limits.max_header_bytes)
        if self.curve is not None:
            self.curve.apply(sock)
        sock.connect(self.address)
        return sock

    def _open(self) -> None:
        sock = self._socket = self.open_socket()
        # One poller for the socket's life: Socket.poll builds a new one per call.
        self._poller = zmq.Poller()
        self._poller.register(sock, zmq.POLLIN)
        # The first answer on a fresh socket may also have paid for the TCP and ZMTP handshakes (HANDSHAKE_GRACE_S).
        self._fresh = True
        self._opened_at = self.clock()
        # The last time the socket was seen with nothing to read: a message found waiting arrived after it.
        self._quiet_at = self.clock()

    def _reset(self) -> None:
        """Lazy Pirate: drop the socket (and anything queued on it) and start a fresh one."""
        if self._socket is not None:
            self._socket.close(linger=0)
        self._pending_probe = None
        self._open()

    def close(self) -> None:
        if self._prober is not None:
            self._prober.stop()
            self._prober = None
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None

    def __enter__(self) -> "PeerClient":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # ------------------------------------------------------------ public API

    def offload(self, cut_id: int, tensors: Mapping[str, np.ndarray], deadline_s: float,
                thresholds: Optional[Sequence[float]] = None, use_exits: bool = True) -> OffloadOutcome:
        """Ship the tensors crossing ``cut_id``; wait at most ``deadline_s`` (the task's remaining time)."""
        return self._exchange("infer", cut_id, tensors, deadline_s, thresholds, use_exits)

    def probe(self, timeout_s: float, payload_bytes: int = 0) -> OffloadOutcome:
        """A blocking probe: is the peer there with our bundle? ``payload_bytes`` also measures bandwidth."""
        payload = {wire.PROBE_PAYLOAD: self._payload(payload_bytes)} if payload_bytes else {}
        return self._exchange("probe", 0, payload, timeout_s, None, False)

    def maybe_probe(self) -> bool:
        """Non-blocking upkeep; call it between tasks. Returns ``peer_alive``.

        Collects the answer to an earlier probe, gives up on one older than ``probe_timeout_s``,
        and sends a new probe when ``probe_plan`` says one is due. With background probes running, the
        probe thread does all of that and this only reports ``peer_alive``.
        """
        if self._prober is not None:
            if self._prober.alive:
                return self.peer_alive
            log.error("the probe thread for %s has ended; probing from the caller again", self.address)
            self._prober = None
        self._drain(0.0)
        now = self.clock()
        pending = self._pending_probe
        if pending is not None:
            if now - pending.sent_at >= self.probe_timeout_s:
                log.info("probe %d to %s got no answer within %.2f s", pending.request_id, self.address,
                         self.probe_timeout_s)
                self._mark_down(now)
                self._reset()
            return self.peer_alive
        payload, _, _ = self.probe_plan(now)
        if payload is not None:
            self._send_probe(payload, now)
        return self.peer_alive

    def start_background_probes(self) -> None:
        """Send probes from a thread of their own from now on (``runtime/transport/prober.py``). Call it once the
        first probes were made (they run on this socket, blocking); a pending probe of ``maybe_probe`` is dropped."""
        if self._prober is not None:
            return
        self._pending_probe = None
        self._prober = Prober(self)
        self._prober.start()

    @property
    def background_probes(self) -> bool:
        return self._prober is not None

    @property
    def down_epoch(self) -> int:
        """How many times the peer was marked down: a probe sent at another epoch is moot."""
        return self._down_epoch

    def probe_plan(self, now: float) -> Tuple[Optional[int], float, int]:
        """(payload bytes of the probe due now, or None; seconds until one may be due; the epoch it was planned in).

        A plain probe when the peer is down (at most every backoff interval), an empty one when the estimator
        wants a fresh RTT sample (every ``rtt_refresh_s``), or one with a ``probe_bytes`` payload when the link
        estimate is stale (to refresh the bandwidth). Nothing while an offload is on the link.
        """
        with self._lock:
            epoch = self._down_epoch
            if self.link_use.busy:
                return None, _OFFLOAD_NAP_S, epoch
            if not self.peer_alive:
                if now >= self._next_probe_at:
                    return 0, 0.0, epoch
                return None, self._next_probe_at - now, epoch
            estimator = self.estimator
            if estimator.rtt_probe_due(now):
                # An empty probe now and then keeps the base RTT current: offloads carry payloads and are no
                # RTT samples, and a stale base skews every bandwidth sample (docs/link.md, "Base RTT").
                return 0, 0.0, epoch
            if estimator.is_stale(now):
                return (self.probe_bytes if estimator.base_rtt_s is not None else 0), 0.0, epoch
            return None, estimator.next_probe_at() - now, epoch

    def _probe_frames(self, payload_bytes: int) -> Tuple[int, list]:
        request_id = next(self._ids)
        payload = {wire.PROBE_PAYLOAD: self._payload(payload_bytes)} if payload_bytes else {}
        return request_id, wire.encode_request(request_id, "probe", self.bundle_hash, 0, self.probe_timeout_s,
                                               payload)

    def send_probe(self, socket: zmq.Socket, payload_bytes: int, epoch: int) -> Optional[Tuple[int, int]]:
        """The probe thread's send on its ``socket``: (request id, bytes sent), or None when an offload began or the
        peer was marked down since ``probe_plan`` gave ``epoch`` (then nothing is sent). ZMQError propagates."""
        request_id, frames = self._probe_frames(payload_bytes)
        with self.link_use.lock, self._lock:
            if epoch != self._down_epoch or self.link_use.exchanges:
                return None
            socket.send_multipart(frames, flags=zmq.NOBLOCK, copy=False)
            self.probes_sent += 1
        return request_id, wire.message_bytes(frames)

    def probe_answered(self, reply: wire.Reply, sent: int, received: int, round_trip: float, now: float,
                       epoch: int, timed: bool = True) -> None:
        """The probe thread's answer, read when it arrived (``timed``: False for a fresh socket's first)."""
        with self._lock:
            if epoch != self._down_epoch:
                return  # sent before the peer was marked down: the old socket's answer would have been dropped
            self._outcome(reply, reply.request_id, sent, received, round_trip, now, fresh=not timed)

    def probe_lost(self, now: float, epoch: int) -> None:
        """The probe thread's probe got no answer in time (or could not be sent)."""
        with self._lock:
            if epoch == self._down_epoch:
                self._mark_down(now)

    def link_estimate(self) -> LinkEstimate:
        return self.estimator.snapshot(self.clock())

    @property
    def probe_in_flight(self) -> bool:
        """A probe of ``maybe_probe`` awaits its answer: call ``maybe_probe`` every few ms, or its timing is lost
        (never with background probes: their thread reads its answers)."""
        return self._pending_probe is not None

    # ------------------------------------------------------------ internals

    def _payload(self, nbytes: int) -> np.ndarray:
        if nbytes != self._probe_payload.size:
            self._probe_payload = np.zeros(nbytes, dtype=np.uint8)
        return self._probe_payload

    def _send_probe(self, nbytes: int, now: float) -> None:
        request_id, frames = self._probe_frames(nbytes)
        self.probes_sent += 1
        try:
            self._socket.send_multipart(frames, flags=zmq.NOBLOCK, copy=False)
        except zmq.ZMQError as exc:
            log.info("probe to %s not sent: %s", self.address, exc)
            self._mark_down(now)
            return
        self._pending_probe = _PendingProbe(request_id, now, wire.message_bytes(frames))

    def _exchange(self, kind: str, cut_id: int, tensors: Mapping[str, np.ndarray], deadline_s: float,
                  thresholds: Optional[Sequence[float]], use_exits: bool) -> OffloadOutcome:
        start = self.clock()
        request_id = next(self._ids)
        if not deadline_s > 0.0:
            return OffloadOutcome(TIMEOUT, request_id, message="no time left before the deadline")
        try:
            frames = wire.encode_request(request_id, kind, self.bundle_hash, cut_id, deadline_s, tensors,
                                         thresholds, use_exits)
        except ValueError as exc:
            return OffloadOutcome(ERROR, request_id, message=str(exc))
        sent = wire.message_bytes(frames)
        # On the link from the send until its outcome is recorded (a timeout's mark-down included): the probe
        # threads of every peer of this device wait.
        self.link_use.begin()
        try:
            try:
                self._socket.send_multipart(frames, flags=zmq.NOBLOCK, copy=False)
            except zmq.ZMQError as exc:
                self._mark_down(start)
                self._reset()
                return OffloadOutcome(ERROR, request_id, message="send to %s failed: %s" % (self.address, exc),
                                      bytes_sent=0)
            got = self._await(request_id, start + deadline_s)
            end = self.clock()
            if got is None:
                log.info("%s %d to %s: no answer within %.3f s; falling back", kind, request_id, self.address,
                         deadline_s)
                self._mark_down(end)
                self._reset()
                return OffloadOutcome(TIMEOUT, request_id, message="no answer from %s within %.3f s"
                                      % (self.address, deadline_s), bytes_sent=sent)
            reply, received, unread = got
            return self._outcome(reply, request_id, sent, received, end - start, end, min(unread, end - start),
                                 started=start)
        finally:
            self.link_use.end()

    def _outcome(self, reply: wire.Reply, request_id: int, sent: int, received: int, round_trip: float,
                 now: float, unread_s: float = 0.0, fresh: Optional[bool] = None,
                 started: Optional[float] = None) -> OffloadOutcome:
        """``unread_s``: how long the reply may have waited unread within ``round_trip`` (see ``_receive``).
        ``fresh``: the answer may have paid its socket's handshakes (default: the first answer on this client's own
        socket to an exchange ``started`` within ``HANDSHAKE_GRACE_S`` of its opening)."""
        transfer = max(0.0, round_trip - reply.service_s)
        if fresh is None:
            fresh = self._fresh and (started is None or started - self._opened_at < HANDSHAKE_GRACE_S)
            self._fresh = False
        if unread_s > self.max_unread_s and not fresh:
            log.debug("reply %d read up to %.1f ms after it arrived: no link timing", request_id, 1e3 * unread_s)
        elif not fresh:
            self.estimator.observe(sent + received, transfer, now)
        if reply.status == "ok":
            status = OK
            self._mark_up()
        elif reply.status in _PEER_REFUSALS:
            status = REFUSED
            if reply.status in _PEER_UNUSABLE:
                log.warning("peer %s refused request %d: %s: %r", self.address, request_id, reply.status,
                            reply.message)
                self._mark_down(now)
        else:
            status = ERROR
            # %r: the peer's text is untrusted and must not start a forged log line.
            log.warning("peer %s answered request %d with %s: %r", self.address, request_id, reply.status,
                        reply.message)
        return OffloadOutcome(status, request_id, reply.status, reply.message, reply.exit_id, reply.tensors,
                              reply.compute_s, reply.service_s, round_trip, transfer, sent, received)

    def _await(self, request_id: int, until: float) -> Optional[Tuple[wire.Reply, int, float]]:
        """Wait for the reply to ``request_id`` until the clock reaches ``until``; drop any other.
        Returns (reply, bytes received, how long before it was read it may have arrived)."""
        while True:
            remaining = until - self.clock()
            if remaining <= 0.0:
                return None
            got = self._receive(remaining)
            if got is None:
                continue
            if got[0].request_id == request_id:
                return got

    def _drain(self, timeout_s: float) -> None:
        while self._receive(timeout_s) is not None:
            timeout_s = 0.0

    def _receive(self, timeout_s: float) -> Optional[Tuple[wire.Reply, int, float]]:
        """One message, if any arrives within ``timeout_s``, with how long before now it may have arrived: 0
        when it arrived while this call waited, else the time since the socket was last seen empty.
        Probe answers are consumed here."""
        if self._poller.poll(0):
            waiting_since = self._quiet_at  # it was there already: it arrived some time after that
        else:
            self._quiet_at = self.clock()
            if timeout_s <= 0.0 or not self._poller.poll(max(1, int(math.ceil(timeout_s * 1000.0)))):
                self._quiet_at = self.clock()
                return None
            waiting_since = None  # the poll woke when it arrived
        frames = self._socket.recv_multipart(copy=False)
        now = self.clock()
        unread = 0.0 if waiting_since is None else now - waiting_since
        reply = wire.decode_reply(frames, self.limits)
        if isinstance(reply, wire.WireError):
            log.warning("dropped a malformed reply from %s: %s", self.address, reply)
            return None
        received = wire.message_bytes(frames)
        pending = self._pending_probe
        if pending is not None and reply.request_id == pending.request_id:
            self._pending_probe = None
            round_trip = now - pending.sent_at
            self._outcome(reply, reply.request_id, pending.nbytes, received, round_trip, now, min(unread, round_trip),
                          started=pending.sent_at)
            return None
        return reply, received, unread

    def _mark_down(self, now: float) -> None:
        with self._lock:
            if self.peer_alive:
                log.warning("peer %s marked down; offloading pauses until a probe succeeds", self.address)
                self._backoff = self.probe_backoff_s[0]
            else:
                self._backoff = min(self._backoff * 2.0, self.probe_backoff_s[1])
            self.peer_alive = False
            self._next_probe_at = now + self._backoff
            self._down_epoch += 1

    def _mark_up(self) -> None:
        with self._lock:
            if not self.peer_alive:
                log.warning("peer %s is back; offloading resumes", self.address)
            self.peer_alive = True
            self._backoff = self.probe_backoff_s[0]
