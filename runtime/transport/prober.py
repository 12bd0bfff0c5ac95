"""The peer client's probes on a thread of their own, timed when their answers arrive.

A board whose queue never empties has no idle moment in which to read a probe's answer: sent by the upkeep
before a task, it arrived while the task computed and was read after it, too late to time (the estimate then
kept its start-up value for the whole run; docs/link.md, "A board that is never idle"). The prober owns a
second DEALER socket to the same peer (the same keys), sends what ``PeerClient`` would send when it would send
it (a plain probe while the peer is down, at most every backoff interval; an empty one when the base RTT wants
refreshing; one with a payload when the estimate is stale), and blocks in ``poll`` until the answer comes, so
each answer is timed on arrival whatever the task's thread is doing. onnxruntime releases the GIL while a
segment runs; a task's own Python holds it for tens of microseconds at a time.

It keeps the single-threaded client's rules, which the environment's virtual client copies
(``codegen/learning/virtual_client.py``): one probe in flight; none sent while an offload is in flight (both
would share the link and each read it slower); a probe older than the client's ``probe_timeout_s`` marks the
peer down and its socket is replaced; and when the task's thread marks the peer down (an offload timed out,
its socket replaced), a probe sent before that is given up (its answer, if it comes, is dropped), as the old
socket's would have been, and the next goes out after the backoff.
"""
import logging
import math
import threading
from typing import Optional

import zmq

from edgesplit.runtime.thread_names import name_native_thread
from edgesplit.runtime.transport import wire

log = logging.getLogger(__name__)

# The longest the thread sleeps without looking at the client's state: an offload that ended, or a peer that
# the task's thread marked down, is noticed within this.
MAX_NAP_S = 0.1
# A wait for an answer is cut into slices this long so that ``stop``, and a mark-down by the task's thread,
# are noticed; a slice that ends with the answer still on its way does not spoil its timing (the next poll
# wakes when it arrives).
POLL_SLICE_MS = 10
# An exchange that began within this of its socket's opening may have paid the TCP and ZMTP handshakes (ZeroMQ
# queues it until they are done): its answer gives no link timing. One sent later found them done. (Counting
# every socket's first answer out, as before, lost the first offload after each reset, whose recovery probe now
# goes on the probe thread's socket: on a link in a dip the estimate then went stale, 4 KiB probes took the
# link from the offloads, and more of them timed out.)
HANDSHAKE_GRACE_S = 0.1
# After an unexpected error the thread waits this long, replaces its socket and goes on.
RETRY_AFTER_S = 1.0


class Prober:
    """The probe thread of one ``PeerClient``. ``start()`` once; ``stop()`` joins it and closes its socket."""

    def __init__(self, client):
        self.client = client
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="edgesplit-probe", daemon=True)
        self._socket = None  # type: Optional[zmq.Socket]
        self._poller = None  # type: Optional[zmq.Poller]
        self._fresh = True

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # ------------------------------------------------------------ the thread

    def _main(self) -> None:
        client = self.client
        failing = False
        name_native_thread()  # es-probe in top -H, whenever a client starts one
        try:
            while not self._stop.is_set():
                try:
                    if self._socket is None:
                        self._open()
                    now = client.clock()
                    payload, wait_s, epoch = client.probe_plan(now)
                    if payload is None:
                        self._stop.wait(min(MAX_NAP_S, max(0.0, wait_s)))
                        continue
                    self._probe(payload, now, epoch)
                    failing = False
                except Exception:  # noqa: BLE001 - it must go on: it is what finds a peer that came back
                    if not failing:
                        log.exception("probing %s failed; trying again every %.0f s with a fresh socket (offloads "
                                      "keep their own timing meanwhile)", client.address, RETRY_AFTER_S)
                    failing = True
                    self._close()  # the next pass opens a fresh one
                    self._stop.wait(RETRY_AFTER_S)
        finally:
            self._close()

    def _open(self) -> None:
        socket = self.client.open_socket()
        poller = zmq.Poller()
        poller.register(socket, zmq.POLLIN)
        self._socket, self._poller = socket, poller
        self._fresh = True  # its first answer may also have paid the TCP and ZMTP handshakes (HANDSHAKE_GRACE_S)
        self._opened_at = self.client.clock()

    def _close(self) -> None:
        socket, self._socket = self._socket, None
        if socket is not None:
            try:
                socket.close(linger=0)
            except zmq.ZMQError as exc:
                log.debug("closing the probe socket to %s: %s", self.client.address, exc)

    def _probe(self, payload: int, sent_at: float, epoch: int) -> None:
        client = self.client
        try:
            sent = client.send_probe(self._socket, payload, epoch)
        except zmq.ZMQError as exc:
            log.info("probe to %s not sent: %s", client.address, exc)
            client.probe_lost(sent_at, epoch)
            self._close()
            return
        if sent is None:
            return  # an offload began, or the peer was marked down, since the plan: plan again
        request_id, nbytes = sent
        until = sent_at + client.probe_timeout_s
        while not self._stop.is_set():
            if client.down_epoch != epoch:
                return  # the task's thread marked the peer down: this probe is moot (its answer is dropped by id)
            left = until - client.clock()
            if left <= 0.0:
                log.info("probe %d to %s got no answer within %.2f s", request_id, client.address,
                         client.probe_timeout_s)
                client.probe_lost(client.clock(), epoch)
                self._close()  # Lazy Pirate: a late answer on the old socket can never be read as a new one's
                return
            if not self._poller.poll(min(POLL_SLICE_MS, max(1, int(math.ceil(left * 1000.0))))):
                continue
            reply_frames = self._socket.recv_multipart(copy=False)
            arrived = client.clock()  # the poll woke for it: this is when it arrived
            reply = wire.decode_reply(reply_frames, client.limits)
            if isinstance(reply, wire.WireError):
                log.warning("dropped a malformed reply from %s: %s", client.address, reply)
                continue
            if reply.request_id != request_id:
                continue  # an answer to an earlier probe of this socket, already given up on
            fresh = self._fresh and sent_at - self._opened_at < HANDSHAKE_GRACE_S
            self._fresh = False
            client.probe_answered(reply, nbytes, wire.message_bytes(reply_frames), arrived - sent_at, arrived,
                                  epoch, timed=not fresh)
            return
