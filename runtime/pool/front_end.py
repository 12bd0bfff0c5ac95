"""A pool front end: the peer's ZeroMQ wire protocol outside, Ray Serve replicas inside. Stateless.

Devices cannot tell it from ``edgesplit peer``: the same ROUTER socket options, the same decoding and
checks (``wire.decode_request``: a malformed message is answered ``bad_request`` at once), the same
refusals (``bundle_mismatch``, ``expired``, ``overloaded``), probes answered on the spot, the same
reply (``wire.encode_reply``). Each request becomes one call to a replica, awaited on an asyncio loop,
so one front end keeps many requests in flight while the replicas compute; its work per request is
decoding, one Ray call and encoding. It keeps no state a device depends on: devices list several
front ends and fail over between them (``runtime.transport.failover``).
"""
import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import zmq
import zmq.asyncio

from edgesplit.runtime.errors import InputError
from edgesplit.runtime.pool.engine import PoolBusy, ReplicaLost
from edgesplit.runtime.transport import wire

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT_MS = 5000


@dataclass
class FrontEndStats:
    served: int = 0
    probes: int = 0
    bad_requests: int = 0
    bundle_mismatches: int = 0
    expired: int = 0
    overloaded: int = 0
    errors: int = 0
    replicas_lost: int = 0
    by_reason: Dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> Dict[str, Any]:
        return {"served": self.served, "probes": self.probes, "bad_requests": self.bad_requests,
                "bundle_mismatches": self.bundle_mismatches, "expired": self.expired, "overloaded": self.overloaded,
                "errors": self.errors, "replicas_lost": self.replicas_lost, "bad_request_reasons": dict(self.by_reason)}


class PoolFrontEnd:
    """``bind()``, then ``await serve(stop)``; ``close()`` when done. ``engine``: a deployed ``PoolEngine``."""

    def __init__(self, engine, bundle_hash: str, limits: wire.Limits = wire.DEFAULT_LIMITS,
                 max_in_flight: int = 256, curve=None, context: Optional[zmq.Context] = None):
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

    def bind(self, address: str) -> str:
        """Bind the ROUTER (the peer's options); returns the actual endpoint (``*`` picks a free port)."""
        sock = self._context.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, self.limits.max_total_bytes + self.limits.max_header_bytes)
        sock.setsockopt(zmq.RCVHWM, 1000)
        sock.setsockopt(zmq.SNDHWM, 1000)
        sock.setsockopt(zmq.HANDSHAKE_IVL, HANDSHAKE_TIMEOUT_MS)
        sock.setsockopt(zmq.HEARTBEAT_IVL, 10000)
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 30000)
        if self.curve is not None:
            from edgesplit.runtime.security.zap import CurveAllowList

            self._allow_list = CurveAllowList(self._context, self.curve.allowed, self.curve.allowed).start()
            self.curve.apply(sock)
        try:
            sock.bind(address)
        except zmq.ZMQError as exc:
            sock.close(linger=0)
            raise InputError("cannot bind the pool front end to %s: %s (use tcp://HOST:PORT with a free port)"
                             % (address, exc)) from None
        self._sync_socket = sock
        self._socket = zmq.asyncio.Socket.shadow(sock.underlying)
        endpoint = sock.getsockopt(zmq.LAST_ENDPOINT)
        return endpoint.decode("ascii") if isinstance(endpoint, bytes) else str(endpoint)

    def close(self) -> None:
        if self._sync_socket is not None:
            self._sync_socket.close(linger=0)
            self._sync_socket = self._socket = None
        if self._allow_list is not None:
            self._allow_list.stop()
            self._allow_list = None

    async def serve(self, stop: asyncio.Event, poll_ms: int = 100) -> FrontEndStats:
        """Answer requests until ``stop`` is set; requests still in flight then get their answers first."""
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
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5.0)
        return self.stats

    async def _intake(self, frames: List[Any], arrived: float) -> None:
        identity = frames[0].bytes
        request = wire.decode_request(frames[1:], self.limits)
        if isinstance(request, wire.WireError):
            self.stats.bad_requests += 1
            self.stats.by_reason[request.reason] = self.stats.by_reason.get(request.reason, 0) + 1
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
            answer = await self.engine.call(request.cut, request.tensors, request.thresholds, request.use_exits,
                                            remaining, time.monotonic)
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
            await self._reply(identity, request.request_id, "error", "the replica running it was lost: %s" % exc)
            return
        except Exception as exc:  # a replica's failure becomes a reply; the device falls back locally
            self.stats.errors += 1
            log.warning("request %d from %s failed in the pool: %s", request.request_id, identity.hex(), exc)
            await self._reply(identity, request.request_id, "error", "the pool failed running the model: %s" % exc)
            return
        if answer["status"] != "ok":
            self.stats.bad_requests += 1
            self.stats.by_reason["bad_tensors"] = self.stats.by_reason.get("bad_tensors", 0) + 1
            await self._reply(identity, request.request_id, answer["status"], answer.get("message", ""))
            return
        self.stats.served += 1
        await self._reply(identity, request.request_id, "ok", exit_id=answer["exit_id"], compute_s=answer["compute_s"],
                          service_s=time.monotonic() - arrived, tensors=answer["tensors"])

    async def _reply(self, identity: bytes, request_id: Optional[int], status: str, message: str = "",
                     exit_id: Optional[int] = None, compute_s: float = 0.0, service_s: float = 0.0,
                     tensors=None) -> None:
        frames = wire.encode_reply(request_id, status, message, exit_id, compute_s, service_s, tensors)
        try:
            # A reply to a vanished or stalled device is dropped, never waited for.
            await self._socket.send_multipart([identity] + frames, flags=zmq.NOBLOCK, copy=False)
        except zmq.ZMQError as exc:
            log.debug("reply %s to %s dropped: %s", request_id, identity.hex(), exc)
