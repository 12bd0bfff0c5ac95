"""The peer's serve loop: one ROUTER socket, many devices, each device's requests in arrival order.

Each pass drains the messages already waiting (stamping their arrival time; at most ``_DRAIN_BURST``,
so a flood cannot keep the loop from running requests), decodes and checks each at once (a bad
message is answered ``bad_request`` right away and never queued), then runs one queued request,
taking the devices in turn (``FairQueue``: a share per device). With batching on (``BatchPolicy``),
that request opens a batch: the waiting requests for the same cut join it, round-robin between
devices, and run as one pass, checked once on all their rows (``runtime/peer/batching.py``). A small
request no batch can take runs with the small ones waiting behind it, in turn, each its own run,
and all are answered after the last (at most 16): back to back, the model stays in the CPU's caches. A request is refused with
``bundle_mismatch`` when the device's bundle hash differs, ``expired`` when its deadline passed
before its turn, ``overloaded`` when its device already holds its share of a full queue; probes are
answered as soon as they are drained. No exception from one request leaves the loop: every failure
becomes a reply, so one device's bad input never harms the others.

libzmq itself refuses frames over ``MAXMSGSIZE`` (the connection is dropped before allocation).

The loop's own cost per request is what limits a peer serving small requests, so the hot path
receives and sends frames through pyzmq's backend socket methods (the convenience layer's
``recv_multipart``/``send_multipart`` cost several microseconds per message in enum and option
calls), copies small frames instead of wrapping them, and fills reply headers into a template.
"""
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Tuple

import numpy as np
import zmq
from zmq.backend import Socket as _BackendSocket

from edgesplit.runtime.errors import InputError
from edgesplit.runtime.executor.executor import Executor
from edgesplit.runtime.fair_queue import FairQueue
from edgesplit.runtime.memory import TRIM_AFTER_BYTES, release_free_memory
from edgesplit.runtime.peer.batching import BatchPolicy, batch_key, batchable_cuts, concatenate, cut_layout, \
    exits_after, window_end
from edgesplit.runtime.transport import wire
from edgesplit.runtime.transport.router import bind_router, router_socket
from edgesplit.runtime.transport.server_stats import ServerStats

log = logging.getLogger(__name__)

# Messages taken per pass: bounded, so requests run even while a flood arrives. Each refused message
# costs the peer its decoding and answer: with 1024, three flooding devices held the peer to ~100
# requests served per second and a polite device waited ~0.2 s; with 64, ~260/s and ~15 ms
# (bench/peer_fairness.py). The rest of a flood waits in ZeroMQ's per-connection pipes.
_DRAIN_BURST = 64
_HANDSHAKE_EVENTS = {zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "no detail",
                     zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "protocol error: a plain connection or another mechanism",
                     zmq.EVENT_HANDSHAKE_FAILED_AUTH: "key not allowed"}
_HANDSHAKE_FAILURES = (zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                       | zmq.EVENT_HANDSHAKE_FAILED_AUTH)

Clock = Callable[[], float]

_zmq_recv = _BackendSocket.recv
_zmq_send = _BackendSocket.send
_zmq_get = _BackendSocket.get
_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)
_NOBLOCK = int(zmq.NOBLOCK)
_NOBLOCK_MORE = int(zmq.NOBLOCK | zmq.SNDMORE)
# Smaller frames are copied by pyzmq anyway (its copy threshold); sending them as copies skips the Frame.
_COPY_BELOW = 65536
# Without batching, small requests waiting together run one after another and are answered after the
# last (each still its own run and reply): at most this many, so the first is not held long.
_GROUP = 16
_GROUP_BELOW_BYTES = 65536
_WINDOW_SLEEP_S = 0.0002  # while a batch waits for more requests: short naps between looks at the socket


@dataclass
class PeerStats(ServerStats):
    """Counters for logs and tests."""

    handshake_failures: int = 0
    batches: int = 0  # passes that ran more than one request
    batched: int = 0  # requests answered from those passes


def _device_key(frame: Any, identity: bytes) -> bytes:
    """Who gets a fair share: the CurveZMQ user the ZAP handler named (one per device key, however many
    connections it opens), else the connection's ROUTER identity."""
    try:
        user = frame.get("User-Id")
    except (zmq.ZMQError, AttributeError, KeyError):
        user = ""
    if user and user != "anonymous":
        return b"key:" + (user.encode("utf-8", "replace") if isinstance(user, str) else bytes(user))
    return identity


class _Queued:
    """A request waiting for its turn (a plain class: one is made per request, a dataclass costs more)."""

    __slots__ = ("identity", "request", "arrived", "device", "batch_key", "rows")

    def __init__(self, identity: bytes, request: wire.Request, arrived: float, device: bytes):
        self.identity = identity
        self.request = request
        self.arrived = arrived
        self.device = device  # whose share it counts against (see _device_key)
        self.batch_key = _UNDECIDED  # (rows, per-row shapes) when it can share a pass, else None
        self.rows = 0


_UNDECIDED = object()


class PeerServer:
    """Serves one bundle. ``bind()`` then ``serve(should_stop)``; ``close()`` when done."""

    def __init__(self, executor: Executor, limits: wire.Limits = wire.DEFAULT_LIMITS,
                 context: Optional[zmq.Context] = None, clock: Clock = time.monotonic,
                 max_queue: int = 64, max_queued_bytes: int = 256 * 1024 * 1024, poll_ms: int = 100,
                 curve=None, batch: BatchPolicy = BatchPolicy()):
        self.executor = executor
        self.batch = batch
        manifest = executor.manifest
        self._batchable = {cut: cut in batchable_cuts(manifest) for cut in range(len(manifest.cuts))}
        self._layouts = {cut: cut_layout(manifest, cut) for cut in range(len(manifest.cuts))}
        self._exits_after = {cut: exits_after(manifest, cut) for cut in range(len(manifest.cuts))}
        self._final_exit = manifest.exits[-1].id
        self._output_names = {ex.id: manifest.exit_output(ex.id).name for ex in manifest.exits}
        self._ok_replies = {ex.id: wire.OkReplyEncoder(ex.id, manifest.exit_output(ex.id).name,
                                                       manifest.exit_output(ex.id).dtype) for ex in manifest.exits}
        self._last_batch_s = 0.0  # run time of the last batch: a batch stops waiting that long before a deadline
        # runtime.security.curve.CurveServerKeys: CurveZMQ with an allow list of device keys; None = plain.
        self.curve = curve
        self._allow_list = None
        self.bundle_hash = executor.bundle.wire_hash
        self.limits = limits
        self.clock = clock
        self.max_queue = max_queue
        self.max_queued_bytes = max_queued_bytes
        self.poll_ms = poll_ms
        self.stats = PeerStats()
        self._context = context or zmq.Context.instance()
        self._socket = None  # type: Optional[zmq.Socket]
        self._next = None  # type: Optional[_Queued]  # a request taken in while nothing waited
        self._gathering = False  # while a batch waits for more, every request goes through the queue
        self._receive_timeout_ms = -1  # the socket's RCVTIMEO (libzmq's default: wait forever)
        # Per device, served round-robin: one device's flood cannot keep the others out.
        self._queue = FairQueue(max_queue, max_queued_bytes)
        self._warned = set()  # (identity, reason) pairs already logged at WARNING
        self._monitor = None  # type: Optional[zmq.Socket]
        self._handshakes_unlogged = 0
        self._handshake_logged_at = None  # type: Optional[float]

    def bind(self, address: str) -> str:
        """Bind the ROUTER; returns the actual endpoint (``tcp://127.0.0.1:*`` picks a free port)."""
        sock, self._allow_list = router_socket(self._context, self.limits, self.curve)
        if self.curve is not None:
            # A plain or wrongly keyed client fails in libzmq's handshake, before any message: only the
            # socket monitor sees it, and without it an operator would have no line to go on.
            self._monitor = sock.get_monitor_socket(_HANDSHAKE_FAILURES)
        endpoint = bind_router(sock, address, "the peer")
        self._socket = sock
        return endpoint

    def queue_depth(self) -> Tuple[int, int]:
        """(requests, bytes) waiting for their turn."""
        return len(self._queue), self._queue.nbytes

    def close(self) -> None:
        if self._monitor is not None:
            self._socket.disable_monitor()
            self._monitor.close(linger=0)
            self._monitor = None
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None
        if self._allow_list is not None:
            self._allow_list.stop()
            self._allow_list = None

    def serve(self, should_stop: Callable[[], bool]) -> PeerStats:
        """Answer requests until ``should_stop()`` is true (checked at least every ``poll_ms``)."""
        while not should_stop():
            self.serve_once(self.poll_ms)
        return self.stats

    def serve_once(self, timeout_ms: int) -> None:
        if self._monitor is not None:
            self._watch_handshakes()
        if self._queue or self._next is not None:
            self._drain(_NOBLOCK)
        else:
            # Nothing to run: the first receive waits for a message (up to timeout_ms), as a bare loop's
            # blocking recv does, instead of a poll and then a receive.
            if timeout_ms != self._receive_timeout_ms:
                self._socket.setsockopt(zmq.RCVTIMEO, timeout_ms)
                self._receive_timeout_ms = timeout_ms
            self._drain(0)
        item, self._next = self._next or self._queue.pop(), None
        if item is None:
            return
        if self.batch.enabled and self._joins_batch(item, self.batch.max_batch):
            batch = self._gather(item)
            trim = any(i.request.nbytes >= TRIM_AFTER_BYTES for i in batch)
            self._run_batch(batch)
        elif item.request.nbytes >= _GROUP_BELOW_BYTES or not self._queue:
            trim = item.request.nbytes >= TRIM_AFTER_BYTES
            self._run(item)
        else:
            trim = False
            self._run_group(item)
        if trim:
            item = batch = None  # drop the requests' buffers before trimming
            release_free_memory()

    # ------------------------------------------------------------ intake

    def _drain(self, first_flags: int) -> None:
        """Take in up to ``_DRAIN_BURST`` messages; the first receive uses ``first_flags`` (0: wait up to
        RCVTIMEO), the others only take what is there (asking EVENTS is cheaper than a failed receive)."""
        flags = first_flags
        for _ in range(_DRAIN_BURST):
            if flags == _NOBLOCK and not _zmq_get(self._socket, _EVENTS) & _POLLIN:
                return
            try:
                frames = self._recv_message(flags)
            except zmq.Again:
                return
            flags = _NOBLOCK
            try:
                self._intake(frames, self.clock())
            except Exception:  # a bug met by one message must not stop the serve loop for every device
                self.stats.errors += 1
                log.exception("failed taking in a message; the peer keeps serving")

    def _recv_message(self, flags: int) -> List[Any]:
        """One whole multipart message (raises zmq.Again when none waits). The rest of a message is there
        once its first frame is: ZeroMQ delivers messages whole."""
        frame = _zmq_recv(self._socket, flags, False)
        frames = [frame]
        while frame.more:
            frame = _zmq_recv(self._socket, _NOBLOCK, False)
            frames.append(frame)
        return frames

    def _intake(self, frames: List[Any], arrived: float) -> None:
        identity = frames[0].bytes
        # Only a secure link has a User-Id worth asking libzmq for.
        device = identity if self.curve is None else _device_key(frames[0], identity)
        request = wire.decode_request(frames[1:], self.limits)
        if isinstance(request, wire.WireError):
            self.stats.bad_request(request.reason)
            self._warn_once(identity, request.reason, "refused a malformed request from %s: %s",
                            identity.hex(), request)
            self._reply(identity, request.request_id, "bad_request", str(request))
            return
        if request.bundle != self.bundle_hash:
            self.stats.bundle_mismatches += 1
            # %r: the device's string is untrusted and must not start a forged log line.
            self._warn_once(identity, "bundle", "device %s uses bundle %r, this peer serves %s: refused",
                            identity.hex(), request.bundle[:64], self.bundle_hash[:16])
            self._reply(identity, request.request_id, "bundle_mismatch",
                        "this peer serves bundle %s, the device sent %s: install the same bundle on both"
                        % (self.bundle_hash, request.bundle))
            return
        if request.deadline_s <= 0.0:
            self._expired(identity, request)
            return
        if request.kind == "probe":
            self.stats.probes += 1
            self._reply(identity, request.request_id, "ok", service_s=self.clock() - arrived)
            return
        queued = _Queued(identity, request, arrived, device)
        if (self._next is None and not self._queue and not self._gathering
                and request.nbytes <= self._queue.capacity_bytes):
            # Nothing waits: this request runs next whatever arrives after it, so it skips the queue.
            self._next = queued
            return
        if self._next is not None:  # it arrived first: into the queue ahead of this one
            held, self._next = self._next, None
            self._admit(held)
        self._admit(queued)

    def _admit(self, queued: _Queued) -> None:
        admitted, pushed_out = self._queue.offer(queued.device, queued, queued.request.nbytes)
        for item in ([] if admitted else [queued]) + pushed_out:
            self.stats.overloaded += 1
            self._reply(item.identity, item.request.request_id, "overloaded",
                        "%d requests (%d bytes) already queued; this device holds its share (%d devices waiting)"
                        % (len(self._queue), self._queue.nbytes, self._queue.clients))

    # ------------------------------------------------------------ work

    def _run_group(self, first: _Queued) -> None:
        """``first`` and the small requests waiting behind it that no batch could take, in turn as ``pop``
        gives them (at most ``_GROUP``): each runs alone, then all are answered. The same runs and replies as
        one ``_run`` per pass, but the model's code and weights stay in the CPU's caches from one run to the
        next (a run cost ~25 us between decodes and replies, ~14 us back to back, on this segment)."""
        batching, max_batch = self.batch.enabled, self.batch.max_batch

        def alone(item: _Queued) -> bool:  # small, and not a request a batch could take
            return item.request.nbytes < _GROUP_BELOW_BYTES and not (batching and self._joins_batch(item, max_batch))

        group = [first] + self._queue.take(alone, _GROUP - 1)
        done = []
        for item in group:
            result = self._compute(item)
            if result is not None:
                done.append((item, result))
        for item, (exit_id, compute_s, output) in done:
            self._reply_ok(item, exit_id, compute_s, output)

    def _run(self, item: _Queued) -> None:
        result = self._compute(item)
        if result is not None:
            self._reply_ok(item, *result)

    def _compute(self, item: _Queued) -> Optional[Tuple[int, float, np.ndarray]]:
        """(exit, compute seconds, output) of one request, or None once it is answered otherwise."""
        request = item.request
        if self.clock() - item.arrived >= request.deadline_s:
            self._expired(item.identity, request)
            return None
        try:
            if request.use_exits and self._exits_after.get(request.cut, False):
                result = self.executor.run_from(request.cut, request.tensors, request.thresholds, True,
                                                final_entropy=False)
                exit_id, compute_s, output = result.exit_id, result.compute_seconds, result.output
            else:  # no exit can be taken on the way: the lean pass, same checks and result
                output, compute_s = self.executor.run_plain(request.cut, request.tensors, request.thresholds)
                exit_id = self._final_exit
        except InputError as exc:
            self.stats.bad_request("bad_tensors")
            self._warn_once(item.identity, "bad_tensors", "request %d from %s: %s", request.request_id,
                            item.identity.hex(), exc)
            self._reply(item.identity, request.request_id, "bad_request", str(exc))
            return None
        except Exception as exc:  # a backend failure must become a reply, not end the serve loop
            self.stats.errors += 1
            log.exception("request %d from %s failed in the model", request.request_id, item.identity.hex())
            self._reply(item.identity, request.request_id, "error", "the peer failed running the model: %s" % exc)
            return None
        self.stats.served += 1
        return exit_id, compute_s, output

    # ------------------------------------------------------------ batches

    def _joins_batch(self, item: _Queued, room: int) -> bool:
        """Whether a request can share a pass: its cut batches, no exit on its path is asked for, its tensors
        have the cut's layout (``batch_key``) and its thresholds the bundle's count (else it runs alone, and a
        refusal is worded there), and its rows fit in ``room``."""
        if item.batch_key is _UNDECIDED:
            item.batch_key = self._batch_key(item.request)
            item.rows = item.batch_key[0] if item.batch_key is not None else 0
        return item.batch_key is not None and item.rows <= room

    def _batch_key(self, request: wire.Request):
        cut = request.cut
        if not self._batchable.get(cut, False) or (request.use_exits and self._exits_after[cut]):
            return None
        if request.thresholds is not None and len(request.thresholds) != len(self.executor.side_exits):
            return None
        return batch_key(request.tensors, self._layouts[cut])

    def _gather(self, first: _Queued) -> List[_Queued]:
        """``first`` and the waiting requests for its cut, up to ``max_batch`` rows, waiting for more at most
        until the window closes (or the earliest deadline in the batch comes near)."""
        self._gathering = True
        try:
            return self._gather_until_full(first)
        finally:
            self._gathering = False

    def _gather_until_full(self, first: _Queued) -> List[_Queued]:
        batch = [first]
        state = {"rows": first.rows}

        def accept(item: _Queued) -> bool:
            room = self.batch.max_batch - state["rows"]
            if room <= 0 or item.request.cut != first.request.cut or not self._joins_batch(item, room) \
                    or item.batch_key[1] != first.batch_key[1]:
                return False
            state["rows"] += item.rows
            return True

        while True:
            batch.extend(self._queue.take(accept, self.batch.max_batch - len(batch)))
            if state["rows"] >= self.batch.max_batch or self.batch.window_s <= 0.0:
                return batch
            until = window_end(min(i.arrived for i in batch), self.batch,
                               [(i.arrived, i.request.deadline_s) for i in batch], self._last_batch_s)
            if self.clock() >= until:
                return batch
            if _zmq_get(self._socket, _EVENTS) & _POLLIN:
                self._drain(_NOBLOCK)
            else:
                time.sleep(_WINDOW_SLEEP_S)

    def _run_batch(self, batch: List[_Queued]) -> None:
        now = self.clock()
        live = []
        for item in batch:
            if now - item.arrived >= item.request.deadline_s:
                self._expired(item.identity, item.request)
            else:
                live.append(item)
        if len(live) <= 1:
            for item in live:
                self._run(item)
            return
        cut = live[0].request.cut
        try:
            feeds = concatenate([i.request.tensors for i in live], self._layouts[cut].names)
            # The executor's checks run once, on the batch: a request alone would pass them iff its rows do.
            output, compute_s = self.executor.run_plain(cut, feeds)
        except InputError:  # some request's rows fail a check (a non-finite value): it is answered alone
            self._run_apart(live, cut)
            return
        except Exception:  # each request alone then gets its own answer: ok, bad_request or error
            log.debug("a batch of %d requests at cut %d failed; running them one at a time", len(live), cut,
                      exc_info=True)
            for item in live:
                self._run(item)
            return
        self._last_batch_s = compute_s
        self._reply_batch(live, compute_s, output)

    def _run_apart(self, live: List[_Queued], cut: int) -> None:
        """The requests of a batch that failed the checks, each checked alone: those that fail run (and are
        refused) alone, the others run as a batch again."""
        passing = []
        for item in live:
            try:
                self.executor.check_inputs(item.request.tensors, cut)
            except InputError:
                self._run(item)  # words the refusal as for any request
                continue
            passing.append(item)
        if len(passing) == len(live):  # each passes alone, the batch did not: they run one at a time
            for item in live:
                self._run(item)
        else:
            self._run_batch(passing)

    def _reply_batch(self, live: List[_Queued], compute_s: float, output: np.ndarray) -> None:
        encoder = self._ok_replies[self._final_exit]
        clock = self.clock
        try:
            frames = encoder.rows([(i.request.request_id, clock() - i.arrived, i.rows) for i in live], compute_s,
                                  output)
        except ValueError:  # an unexpected dtype or row count: the general path, one reply at a time
            log.debug("batch output %s %s: replies go the general way", output.dtype, output.shape)
            start = 0
            for item in live:
                self.stats.served += 1
                self._reply_ok(item, self._final_exit, compute_s, output[start:start + item.rows])
                start += item.rows
            self.stats.batches += 1
            self.stats.batched += len(live)
            return
        self.stats.batches += 1
        self.stats.batched += len(live)
        self.stats.served += len(live)
        sock = self._socket
        for item, (header, rows) in zip(live, frames):  # _send_ok inline: one call less per reply
            try:
                _zmq_send(sock, item.identity, _NOBLOCK_MORE, True)
                _zmq_send(sock, header, _NOBLOCK_MORE, True)
                _zmq_send(sock, rows, _NOBLOCK, rows.nbytes < _COPY_BELOW)
            except zmq.ZMQError as exc:
                log.debug("reply %s to %s dropped: %s", item.request.request_id, item.identity.hex(), exc)

    def _expired(self, identity: bytes, request: wire.Request) -> None:
        self.stats.expired += 1
        log.debug("request %d from %s expired before its turn", request.request_id, identity.hex())
        self._reply(identity, request.request_id, "expired", "the deadline passed before the peer got to it")

    def _reply(self, identity: bytes, request_id: Optional[int], status: str, message: str = "",
               exit_id: Optional[int] = None, compute_s: float = 0.0, service_s: float = 0.0,
               tensors=None) -> None:
        self._send([identity] + wire.encode_reply(request_id, status, message, exit_id, compute_s, service_s,
                                                  tensors), request_id)

    def _reply_ok(self, item: _Queued, exit_id: int, compute_s: float, output: np.ndarray) -> None:
        """An ``ok`` reply from the exit's header template (the general path for an unexpected dtype)."""
        service_s = self.clock() - item.arrived
        try:
            header, array = self._ok_replies[exit_id](item.request.request_id, compute_s, service_s, output)
        except ValueError:
            self._reply(item.identity, item.request.request_id, "ok", exit_id=exit_id, compute_s=compute_s,
                        service_s=service_s, tensors={self._output_names[exit_id]: output})
            return
        self._send_ok(item.identity, header, array, item.request.request_id)

    def _send_ok(self, identity: bytes, header: bytes, array: np.ndarray, request_id: int) -> None:
        """``_send`` for the usual reply: identity, header, one result array."""
        try:
            _zmq_send(self._socket, identity, _NOBLOCK_MORE, True)
            _zmq_send(self._socket, header, _NOBLOCK_MORE, True)
            _zmq_send(self._socket, array, _NOBLOCK, array.nbytes < _COPY_BELOW)
        except zmq.ZMQError as exc:
            log.debug("reply %s to %s dropped: %s", request_id, identity.hex(), exc)

    def _send(self, frames: List[Any], request_id: Optional[int]) -> None:
        identity = frames[0]
        last = len(frames) - 1
        try:
            # ROUTER drops a reply to a vanished or stalled identity instead of blocking: that is wanted.
            for index, frame in enumerate(frames):
                copy = not isinstance(frame, np.ndarray) or frame.nbytes < _COPY_BELOW
                _zmq_send(self._socket, frame, _NOBLOCK_MORE if index < last else _NOBLOCK, copy)
        except zmq.ZMQError as exc:
            log.debug("reply %s to %s dropped: %s", request_id, identity.hex(), exc)

    def _watch_handshakes(self) -> None:
        """Log failed CurveZMQ handshakes: the first at once, then a count at most every minute."""
        from zmq.utils.monitor import recv_monitor_message

        while True:
            try:
                event = recv_monitor_message(self._monitor, flags=zmq.NOBLOCK)
            except zmq.Again:
                break
            self.stats.handshake_failures += 1
            self._handshakes_unlogged += 1
            if self._handshake_logged_at is None:
                self._handshake_logged_at = self.clock()
                self._handshakes_unlogged = 0
                log.warning("a connection to %s failed the CurveZMQ handshake (%s): a device without the "
                            "secure link, or with another peer key? (further failures are counted, logged at "
                            "most once a minute)", event.get("endpoint", b"").decode("ascii", "replace"),
                            _HANDSHAKE_EVENTS.get(event["event"], "event %d" % event["event"]))
        if self._handshakes_unlogged and self.clock() - self._handshake_logged_at >= 60.0:
            log.warning("%d more connections failed the CurveZMQ handshake in the last %.0f s",
                        self._handshakes_unlogged, self.clock() - self._handshake_logged_at)
            self._handshakes_unlogged = 0
            self._handshake_logged_at = self.clock()

    def _warn_once(self, identity: bytes, reason: str, message: str, *args) -> None:
        key = (identity, reason)
        if key in self._warned:
            log.debug(message, *args)
            return
        if len(self._warned) > 4096:  # bounded even when many identities misbehave
            self._warned.clear()
        self._warned.add(key)
        log.warning(message, *args)

