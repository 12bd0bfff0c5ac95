"""A peer that answers every request with a malformed reply, for the device-side hostile-input tests.

It is a real ZeroMQ ROUTER on loopback, run in a thread of the test process: the device (a daemon
or ``edgesplit run`` subprocess) talks to it over a real TCP socket. Each reply echoes nothing
useful: it is one header frame from ``REPLIES`` in turn (deep JSON, an integer past float range,
a newline-laden message, plain garbage).
"""
import threading
from typing import List, Optional

import zmq

DEEP_JSON = b"[" * 15000
HUGE_NUMBER = (b'{"v":1,"id":1,"status":"ok","message":"","exit":null,"compute_s":1' + b"0" * 400
               + b',"service_s":0,"tensors":[]}')
REPLIES = [DEEP_JSON, HUGE_NUMBER, b"\xff\xfe garbage", b'{"v":1,"id":1e999,"status":"ok"}']


class HostilePeer:
    """``with HostilePeer() as peer: peer.endpoint``; ``peer.requests`` counts what it was asked."""

    def __init__(self, replies: Optional[List[bytes]] = None):
        self.replies = list(replies or REPLIES)
        self.requests = 0
        self._stop = threading.Event()
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.ROUTER)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.bind("tcp://127.0.0.1:*")
        self.endpoint = self._socket.getsockopt(zmq.LAST_ENDPOINT).decode("ascii")
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> "HostilePeer":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(5)
        self._socket.close(linger=0)
        self._context.term()

    def _serve(self) -> None:
        while not self._stop.is_set():
            if not self._socket.poll(50):
                continue
            frames = self._socket.recv_multipart()
            reply = self.replies[self.requests % len(self.replies)]
            self.requests += 1
            self._socket.send_multipart([frames[0], reply])
