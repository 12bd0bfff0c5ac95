"""A pool front end: the peer's ZeroMQ wire protocol outside, Ray Serve replicas inside. Stateless.

Devices cannot tell it from ``edgesplit peer``: the same ROUTER socket options, the same decoding and
checks (``wire.decode_request``: a malformed message is answered ``bad_request`` at once), the same
refusals (``bundle_mismatch``, ``expired``, ``overloaded``), probes answered on the spot, the same
reply (``wire.encode_reply``). A front end whose replicas do not answer (all gone, or the Ray
connection broken) answers probes and requests ``overloaded``, which marks it down at the device, so
devices go to their next front end instead of waiting out their deadlines here; it serves again by
itself once a replica answers its health call. Each request becomes one call to a replica, awaited on an asyncio loop,
so one front end keeps many requests in flight while the replicas compute; its work per request is
decoding, one Ray call and encoding. It keeps no state a device depends on: devices list several
front ends and fail over between them (``runtime.transport.failover``).
"""
import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, List, Optional

import zmq
import zmq.asyncio

from edgesplit.runtime.pool.engine import PoolBusy, ReplicaLost
from edgesplit.runtime.transport import wire
from edgesplit.runtime.transport.router import bind_router, router_socket
from edgesplit.runtime.transport.server_stats import ServerStats

log = logging.getLogger(__name__)


@dataclass
class FrontEndStats(ServerStats):
    """A front end's counters (``ServerStats`` and its own)."""

    replicas_lost: int = 0
    unavailable: int = 0  # probes and requests refused while no replica answered


class PoolFrontEnd:
    """``bind()``, then ``await serve(stop)``; ``close()`` when done. ``engine``: a deployed ``PoolEngine``.

    Health: every ``health_period_s`` in which no replica answered a request, one ``engine.check`` call; while
    requests wait on replicas and none answered for ``quick_s``, Serve's status (``engine.status_problem``) every
    ``quick_s``. A failed one, or ``failures_before_down`` failed requests in a row, and the front end refuses
    everything ``overloaded`` until a check passes; the requests then waiting on replicas are answered ``overloaded``
    at once (``_release_waiting``), not at their deadlines."""

    def __init__(self, engine, bundle_hash: str, limits: wire.Limits = wire.DEFAULT_LIMITS,
                 max_in_flight: int = 256, curve=None, context: Optional[zmq.Context] = None,
                 health_period_s: float = 2.0, health_timeout_s: float = 5.0, failures_before_down: int = 3,
                 quick_s: float = 0.25):
        self.engine = engine
        self.bundle_hash = bundle_hash
        self.limits = limits
        self.max_in_flight = max_in_flight
        self.curve = curve
        self.stats = FrontEndStats()
        self._context = context or zmq.Context.instance()
        self._socket = None  # type: Optional[zmq.asyncio.Socket]
        self._sync_socket = None  # type: Optional[zmq.Socket]
        self._allow_list = None
        self._tasks = set()  # type: set
        self._waiting = set()  # type: set  # the tasks of _tasks waiting on a replica's answer
        self.health_period_s = health_period_s
        self.health_timeout_s = health_timeout_s
        self.quick_s = quick_s  # requests waiting and no replica answer for this long: read Serve's status
        self.failures_before_down = failures_before_down
        self.unhealthy = ""  # why no replica answers, while none does; "" when healthy
        self._failures = 0  # failed requests in a row
        self._answered_at = time.monotonic()  # when a replica last answered (as good as a health call)

    def bind(self, address: str) -> str:
        """Bind the ROUTER (the peer's options); returns the actual endpoint (``*`` picks a free port)."""
        sock, self._allow_list = router_socket(self._context, self.limits, self.curve)
        endpoint = bind_router(sock, address, "the pool front end")
        self._sync_socket = sock
        self._socket = zmq.asyncio.Socket.shadow(sock.underlying)
        return endpoint

    def close(self) -> None:
        if self._sync_socket is not None:
            self._sync_socket.close(linger=0)
            self._sync_socket = self._socket = None
        if self._allow_list is not None:
            self._allow_list.stop()
            self._allow_list = None

    async def serve(self, stop: asyncio.Event, poll_ms: int = 100) -> FrontEndStats:
        """Answer requests until ``stop`` is set; requests still in flight then get their answers first."""
        watcher = asyncio.ensure_future(self._watch_health(stop))
        try:
            await self._receive_until(stop, poll_ms)
        finally:
            watcher.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5.0)
        return self.stats

    async def _receive_until(self, stop: asyncio.Event, poll_ms: int) -> None:
        while not stop.is_set():
            if not await self._socket.poll(poll_ms, zmq.POLLIN):
                continue
            while True:
                try:
                    frames = await self._socket.recv_multipart(flags=zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    break
                try:
                    await self._intake(frames, time.monotonic())
                except Exception:  # one message's bug must not stop the front end for every device
                    self.stats.errors += 1
                    log.exception("failed taking in a message; the front end keeps serving")

    async def _watch_health(self, stop: asyncio.Event) -> None:
        checked_at = time.monotonic()  # the last full check
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), min(self.quick_s, self.health_period_s))
                return
            except asyncio.TimeoutError:
                pass
            now = time.monotonic()
            quiet = now - self._answered_at  # since a replica last answered
            full = now - checked_at >= self.health_period_s and (bool(self.unhealthy) or quiet >= self.health_period_s)
            # Requests waiting and no answer for quick_s: Serve's status only (a deleted application's calls never
            # return); it cannot prove a replica answers, so it only ever marks the front end down.
            quick = not full and not self.unhealthy and bool(self._waiting) and quiet >= self.quick_s
            if not (full or quick):
                continue  # a replica answered a moment ago, or the last check was a moment ago
            if full:
                checked_at = now
            try:
                problem = await (self.engine.check(self.health_timeout_s) if full else self.engine.status_problem())
            except Exception as exc:  # the watcher must outlive any failure, or the front end never recovers
                problem = "the health call failed: %s: %s" % (type(exc).__name__, exc)
            if problem:
                self._mark_unhealthy(problem)
            elif full:
                self._mark_healthy()

    def _mark_unhealthy(self, problem: str) -> None:
        if not self.unhealthy:
            log.warning("no replica answers (%s): probes and requests are answered 'overloaded', so devices use "
                        "their next front end, until one does", problem)
            self.unhealthy = problem
            self._release_waiting()
        self.unhealthy = problem

    def _release_waiting(self) -> None:
        """Requests waiting on replicas that are gone are answered 'overloaded' now, not at their deadlines: each
        waiting call is cancelled, and its request answered where it waited (``_answer``)."""
        for task in list(self._waiting):
            task.cancel()

    def _mark_healthy(self) -> None:
        if self.unhealthy:
            log.warning("a replica answers again; serving")
        self.unhealthy = ""
        self._failures = 0
        self._answered_at = time.monotonic()

    def _failed(self, problem: str) -> None:
        self._failures += 1
        if self._failures >= self.failures_before_down:
            self._mark_unhealthy("%d requests in a row failed, the last: %s" % (self._failures, problem))

    async def _intake(self, frames: List[Any], arrived: float) -> None:
        identity = frames[0].bytes
        request = wire.decode_request(frames[1:], self.limits)
        if isinstance(request, wire.WireError):
            self.stats.bad_request(request.reason)
            log.debug("refused a malformed request from %s: %s", identity.hex(), request)
            await self._reply(identity, request.request_id, "bad_request", str(request))
        elif request.bundle != self.bundle_hash:
            self.stats.bundle_mismatches += 1
            await self._reply(identity, request.request_id, "bundle_mismatch",
                              "this pool serves bundle %s, the device sent %s: install the same bundle on both"
                              % (self.bundle_hash, request.bundle))
        elif request.deadline_s <= 0.0:
            self.stats.expired += 1
            await self._reply(identity, request.request_id, "expired", "the deadline passed before the pool got to it")
        elif self.unhealthy:
            self.stats.unavailable += 1
            await self._reply(identity, request.request_id, "overloaded",
                              "no replica behind this front end answers (%s); try another front end"
                              % self.unhealthy[:200])
        elif request.kind == "probe":
            self.stats.probes += 1
            await self._reply(identity, request.request_id, "ok", service_s=time.monotonic() - arrived)
        elif len(self._tasks) >= self.max_in_flight:
            self.stats.overloaded += 1
            await self._reply(identity, request.request_id, "overloaded",
                              "%d requests already in flight at this front end; try another" % len(self._tasks))
        else:
            task = asyncio.ensure_future(self._answer(identity, request, arrived))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _answer(self, identity: bytes, request: wire.Request, arrived: float) -> None:
        remaining = request.deadline_s - (time.monotonic() - arrived)
        try:
            answer = await self._call(request, remaining)
        except asyncio.CancelledError:
            if not self.unhealthy:
                raise  # not cancelled by _release_waiting (the loop is closing): nothing to answer
            self.stats.unavailable += 1
            await self._reply(identity, request.request_id, "overloaded",
                              "no replica behind this front end answers (%s); try another front end"
                              % self.unhealthy[:200])
            return
        except asyncio.TimeoutError:
            self.stats.expired += 1
            await self._reply(identity, request.request_id, "expired", "no replica answered before the deadline")
            return
        except PoolBusy as exc:
            self.stats.overloaded += 1
            await self._reply(identity, request.request_id, "overloaded", "every replica is busy: %s" % exc)
            return
        except ReplicaLost as exc:
            self.stats.replicas_lost += 1
            self._failed("replica lost: %s" % exc)
            await self._reply(identity, request.request_id, "error", "the replica running it was lost: %s" % exc)
            return
        except Exception as exc:  # a replica's failure becomes a reply; the device falls back locally
            self.stats.errors += 1
            self._failed("%s: %s" % (type(exc).__name__, exc))
            log.warning("request %d from %s failed in the pool: %s: %s", request.request_id, identity.hex(),
                        type(exc).__name__, exc)
            await self._reply(identity, request.request_id, "error", "the pool failed running the model: %s: %s"
                              % (type(exc).__name__, exc))
            return
        self._mark_healthy()  # a replica answered
        if answer["status"] != "ok":
            self.stats.bad_request("bad_tensors")
            await self._reply(identity, request.request_id, answer["status"], answer.get("message", ""))
            return
        self.stats.served += 1
        await self._reply(identity, request.request_id, "ok", exit_id=answer["exit_id"], compute_s=answer["compute_s"],
                          service_s=time.monotonic() - arrived, tensors=answer["tensors"])

    async def _call(self, request: wire.Request, remaining: float):
        """The engine's call, marked as waiting while it runs (what ``_release_waiting`` cancels)."""
        task = asyncio.current_task()
        self._waiting.add(task)
        try:
            return await self.engine.call(request.cut, request.tensors, request.thresholds, request.use_exits,
                                          remaining, time.monotonic)
        finally:
            self._waiting.discard(task)

    async def _reply(self, identity: bytes, request_id: Optional[int], status: str, message: str = "",
                     exit_id: Optional[int] = None, compute_s: float = 0.0, service_s: float = 0.0,
                     tensors=None) -> None:
        frames = wire.encode_reply(request_id, status, message, exit_id, compute_s, service_s, tensors)
        try:
            # A reply to a vanished or stalled device is dropped, never waited for.
            await self._socket.send_multipart([identity] + frames, flags=zmq.NOBLOCK, copy=False)
        except zmq.ZMQError as exc:
            log.debug("reply %s to %s dropped: %s", request_id, identity.hex(), exc)
