"""A ZAP handler (ZeroMQ RFC 27) that lets in only listed CurveZMQ client keys, and logs who it refuses.

ZeroMQ asks the handler about every CURVE handshake on sockets of the same context. A refused
device gets nothing at all (its connection is closed after the handshake); the peer logs the key and
address once per key at WARNING (then at DEBUG, so a retrying device cannot flood the journal).
"""
import logging
import threading
from typing import Iterable, Optional, Set

import zmq

log = logging.getLogger(__name__)

ZAP_ENDPOINT = "inproc://zeromq.zap.01"
_VERSION = b"1.0"


class CurveAllowList:
    """Runs the ZAP handler thread for one context; ``start()`` before any CURVE socket binds."""

    def __init__(self, context: zmq.Context, allowed_public_keys: Iterable[bytes], names: Optional[dict] = None):
        self.context = context
        self.allowed = set(allowed_public_keys)  # type: Set[bytes]
        self.names = dict(names or {})
        self.accepted = 0
        self.rejected = 0
        self._warned = set()  # type: Set[bytes]
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error = None  # type: Optional[BaseException]
        self._thread = threading.Thread(target=self._main, name="edgesplit-zap", daemon=True)

    def start(self) -> "CurveAllowList":
        self._thread.start()
        self._ready.wait(5.0)
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2.0)

    def _main(self) -> None:
        sock = self.context.socket(zmq.REP)
        sock.setsockopt(zmq.LINGER, 0)
        try:
            sock.bind(ZAP_ENDPOINT)
        except zmq.ZMQError as exc:
            sock.close(0)
            self._error = RuntimeError("cannot start the ZAP handler (%s): is another one running in this "
                                       "process?" % exc)
            self._ready.set()
            return
        self._ready.set()
        try:
            while not self._stop.is_set():
                if sock.poll(100, zmq.POLLIN):
                    sock.send_multipart(self._answer(sock.recv_multipart()))
        finally:
            sock.close(0)

    def _answer(self, frames) -> list:
        # version, request id, domain, address, identity, mechanism, credentials...
        if len(frames) < 6 or frames[0] != _VERSION:
            return [_VERSION, frames[1] if len(frames) > 1 else b"", b"400", b"malformed ZAP request", b"", b""]
        request_id, address, mechanism = frames[1], frames[3].decode("utf-8", "replace"), frames[5]
        if mechanism != b"CURVE" or len(frames) < 7 or len(frames[6]) != 32:
            self.rejected += 1
            log.warning("refused a connection from %s: mechanism %s, but this peer requires CURVE",
                        address, mechanism.decode("ascii", "replace"))
            return [_VERSION, request_id, b"400", b"CURVE required", b"", b""]
        key = zmq.utils.z85.encode(frames[6])
        if key in self.allowed:
            self.accepted += 1
            return [_VERSION, request_id, b"200", b"OK", self.names.get(key, "").encode("utf-8"), b""]
        self.rejected += 1
        if key not in self._warned:
            if len(self._warned) > 4096:
                self._warned.clear()
            self._warned.add(key)
            log.warning("refused device key %s from %s: not in the allowed keys (copy its NAME.key into the "
                        "peer's allowed-keys directory to let it in)", key.decode("ascii"), address)
        else:
            log.debug("refused device key %s from %s again", key.decode("ascii"), address)
        return [_VERSION, request_id, b"400", b"key not allowed", b"", b""]
