"""The ROUTER socket a server binds for devices, set up in one place: ``edgesplit peer`` and every
``edgesplit pool`` front end use it, so a device cannot tell them apart by their sockets."""
from typing import Optional, Tuple

import zmq

from edgesplit.runtime.errors import InputError
from edgesplit.runtime.transport import wire

HANDSHAKE_TIMEOUT_MS = 5000


def router_socket(context: zmq.Context, limits: wire.Limits, curve=None) -> Tuple[zmq.Socket, Optional[object]]:
    """A ROUTER with the servers' options; with ``curve`` (``CurveServerKeys``) also CurveZMQ and its
    running allow list (``CurveAllowList``, which the caller stops after closing the socket)."""
    sock = context.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    # A frame larger than this is cut off by libzmq (the sender is disconnected) before it is allocated.
    sock.setsockopt(zmq.MAXMSGSIZE, limits.max_total_bytes + limits.max_header_bytes)
    sock.setsockopt(zmq.RCVHWM, 1000)
    sock.setsockopt(zmq.SNDHWM, 1000)
    # File descriptors are a budget (LimitNOFILE in the unit): a TCP connection that never speaks
    # ZMTP is closed after HANDSHAKE_IVL (libzmq's default is 30 s), a device that vanished
    # without a FIN after the heartbeat timeout. Idle devices that answer heartbeats stay.
    sock.setsockopt(zmq.HANDSHAKE_IVL, HANDSHAKE_TIMEOUT_MS)
    sock.setsockopt(zmq.HEARTBEAT_IVL, 10000)
    sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 30000)
    allow_list = None
    if curve is not None:
        from edgesplit.runtime.security.zap import CurveAllowList

        allow_list = CurveAllowList(context, curve.allowed, curve.allowed).start()
        curve.apply(sock)
    return sock, allow_list


def bind_router(sock: zmq.Socket, address: str, what: str) -> str:
    """Bind ``sock`` (closing it if that fails); returns the actual endpoint (``*`` picks a free port)."""
    try:
        sock.bind(address)
    except zmq.ZMQError as exc:
        sock.close(linger=0)
        raise InputError("cannot bind %s to %s: %s (use tcp://HOST:PORT with a free port)"
                         % (what, address, exc)) from None
    endpoint = sock.getsockopt(zmq.LAST_ENDPOINT)
    return endpoint.decode("ascii") if isinstance(endpoint, bytes) else str(endpoint)
