"""The peer's ZAP handler: pyzmq's authenticator with CURVE and an allow list of device public keys.

ZeroMQ asks the handler (RFC 27) about every handshake on sockets of the same context; pyzmq's
``ThreadAuthenticator`` answers from a background thread. What we add: only CURVE is accepted, the
user id of an accepted device is its key file's name, and a refused device is logged once per key
at WARNING with its key and address (then at DEBUG, so a retrying device cannot flood the journal).
A refused device gets nothing at all: its connection is closed after the handshake.
"""
import logging
from typing import Iterable, Optional, Set

import zmq
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85

from edgesplit.runtime.security.curve import ZAP_DOMAIN

log = logging.getLogger(__name__)

_WARNED_KEYS_KEPT = 4096  # bounded memory against a device that cycles through keys


class CurveAllowList(ThreadAuthenticator):
    """``start()`` before any CURVE socket of ``context`` binds; ``stop()`` when the peer closes."""

    def __init__(self, context: zmq.Context, allowed_public_keys: Iterable[bytes], names: Optional[dict] = None):
        super().__init__(context, log=logging.getLogger(__name__ + ".pyzmq"))
        self.allowed = set(allowed_public_keys)  # type: Set[bytes]
        self.names = dict(names or {})
        self.accepted = 0
        self.rejected = 0
        self._warned = set()  # type: Set[bytes]
        self._address = ""  # of the handshake being answered (one at a time, on the auth thread)
        # Only the peer's own domain: a socket of another domain is refused ("Unknown domain").
        self.configure_curve_callback(ZAP_DOMAIN.decode("ascii"), self)

    def start(self) -> "CurveAllowList":
        try:
            super().start()
        except zmq.ZMQError as exc:
            super().stop()
            raise RuntimeError("cannot start the ZAP handler (%s): is another one running in this process?"
                               % exc) from None
        return self

    async def handle_zap_message(self, msg) -> None:
        # The address is not passed to the key callback: keep it for the log line.
        self._address = msg[3].decode("utf-8", "replace") if len(msg) > 3 else ""
        if len(msg) >= 6 and msg[5] != b"CURVE":
            self.rejected += 1
            log.warning("refused a connection from %s: mechanism %s, but this peer requires CURVE",
                        self._address, msg[5].decode("ascii", "replace"))
            self._send_zap_reply(msg[1], b"400", b"CURVE required")
            return
        await super().handle_zap_message(msg)

    def callback(self, domain: str, key: bytes) -> bool:
        """pyzmq's credentials-provider hook: is this Z85 client key allowed?"""
        if key in self.allowed:
            self.accepted += 1
            return True
        self.rejected += 1
        if key not in self._warned:
            if len(self._warned) >= _WARNED_KEYS_KEPT:
                self._warned.clear()
            self._warned.add(key)
            log.warning("refused device key %s from %s: not in the allowed keys (copy its NAME.key into the "
                        "peer's allowed-keys directory to let it in)", key.decode("ascii"), self._address)
        else:
            log.debug("refused device key %s from %s again", key.decode("ascii"), self._address)
        return False

    def curve_user_id(self, client_public_key: bytes) -> str:
        return self.names.get(z85.encode(client_public_key), "")
