"""What each side of the link needs for CurveZMQ, and the socket options that switch it on.

The device pins the peer's public key (a peer with another key cannot complete the handshake, so the
device gets no answers and falls back to local execution); the peer has its own key pair and
accepts only the device keys on its allow list (see ``zap.CurveAllowList``).
"""
import ipaddress
import re
from dataclasses import dataclass
from typing import Dict, FrozenSet, Optional

import zmq

from edgesplit.runtime.errors import InputError
from edgesplit.runtime.security.keys import load_keys, load_public_keys

ZAP_DOMAIN = b"edgesplit"


@dataclass(frozen=True)
class CurveClientKeys:
    """Device side: the peer's public key (pinned) and the device's own pair. All Z85 bytes."""

    server_public: bytes
    public: bytes
    secret: bytes

    def apply(self, sock: zmq.Socket) -> None:
        sock.setsockopt(zmq.CURVE_SERVERKEY, self.server_public)
        sock.setsockopt(zmq.CURVE_PUBLICKEY, self.public)
        sock.setsockopt(zmq.CURVE_SECRETKEY, self.secret)


@dataclass(frozen=True)
class CurveServerKeys:
    """Peer side: its own pair and the device public keys it accepts (key -> file name, for logs)."""

    public: bytes
    secret: bytes
    allowed: Dict[bytes, str]

    def apply(self, sock: zmq.Socket) -> None:
        sock.setsockopt(zmq.CURVE_SERVER, 1)
        sock.setsockopt(zmq.CURVE_PUBLICKEY, self.public)
        sock.setsockopt(zmq.CURVE_SECRETKEY, self.secret)
        sock.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN)


def client_keys(peer_public_file: str, device_secret_file: str) -> CurveClientKeys:
    server = load_keys(peer_public_file)
    own = load_keys(device_secret_file, need_secret=True)
    return CurveClientKeys(server.public, own.public, own.secret)


def server_keys(peer_secret_file: str, allowed_keys_dir: str) -> CurveServerKeys:
    own = load_keys(peer_secret_file, need_secret=True)
    allowed = {key: name for key, name in load_public_keys(allowed_keys_dir)}
    return CurveServerKeys(own.public, own.secret, allowed)


def keys_for_bind(bind: str, secret_key: Optional[str], allowed_keys: Optional[str],
                  insecure: bool) -> Optional[CurveServerKeys]:
    """A server's keys from its ``--secret-key``/``--allowed-keys``/``--insecure`` flags (``edgesplit peer``
    and ``edgesplit pool``): None means plain, allowed only on loopback or with ``--insecure``."""
    if bool(secret_key) != bool(allowed_keys):
        raise InputError("the secure link needs both --secret-key FILE and --allowed-keys DIR")
    if secret_key:
        return server_keys(secret_key, allowed_keys)
    if not is_loopback_endpoint(bind) and not insecure:
        raise InputError("--bind %s is reachable from other machines: give --secret-key and --allowed-keys "
                         "(see 'edgesplit keys generate') or, on a trusted network only, --insecure" % bind)
    return None


_HOST = re.compile(r"^(?:tcp|ws|wss)://(?:[^;]*;)?(\[[^\]]*\]|[^:/]*)(?::|$)")
_LOOPBACK_NAMES: FrozenSet[str] = frozenset(("localhost", "127.0.0.1", "::1", "ip6-localhost"))


def is_loopback_endpoint(endpoint: str) -> bool:
    """True for ipc://, inproc:// and TCP endpoints on a loopback address: no key needed there."""
    if endpoint.startswith(("ipc://", "inproc://")):
        return True
    match = _HOST.match(endpoint)
    if not match:
        return False
    host = match.group(1).strip("[]")
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name or an interface name ("eth0", "*"): treat as reachable from outside


def describe(keys: Optional[object]) -> str:
    if keys is None:
        return "plain (no CurveZMQ)"
    return "CurveZMQ, own key %s" % getattr(keys, "public", b"").decode("ascii")
