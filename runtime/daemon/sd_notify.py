"""The systemd notification protocol (sd_notify), without libsystemd.

``$NOTIFY_SOCKET`` names a datagram socket (a path, or ``@name`` in the abstract namespace); each
datagram is newline-separated ``KEY=VALUE`` lines: ``READY=1``, ``STATUS=...``, ``WATCHDOG=1``,
``RELOADING=1``, ``STOPPING=1``. ``$WATCHDOG_USEC`` (for ``$WATCHDOG_PID``, when set) is the watchdog
timeout; we ping at half of it. Outside systemd every call is a no-op.
"""
import logging
import os
import socket
from typing import Mapping, Optional

log = logging.getLogger(__name__)


def one_line(text: str) -> str:
    """A STATUS value on one line: a newline in it would start another assignment (a file name or a policy's error
    message can carry one, and WATCHDOG=trigger would kill the daemon)."""
    return text.replace("\r", " ").replace("\n", " ")


class SystemdNotifier:
    def __init__(self, address: Optional[str], watchdog_s: Optional[float] = None):
        self.address = address
        self.watchdog_s = watchdog_s
        self._sock = None  # type: Optional[socket.socket]
        self._last_ping = None  # type: Optional[float]
        if address:
            target = "\0" + address[1:] if address.startswith("@") else address
            self._target = target
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @classmethod
    def from_environment(cls, environ: Optional[Mapping[str, str]] = None) -> "SystemdNotifier":
        env = os.environ if environ is None else environ
        watchdog_s = None
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            watchdog_s = int(usec) / 1e6
        return cls(env.get("NOTIFY_SOCKET") or None, watchdog_s)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    @property
    def watchdog_interval_s(self) -> Optional[float]:
        """How often to ping: half the timeout, as sd_watchdog_enabled(3) advises."""
        return None if self.watchdog_s is None else self.watchdog_s / 2.0

    def send(self, *lines: str) -> bool:
        if self._sock is None:
            return False
        try:
            self._sock.sendto("\n".join(lines).encode("utf-8"), self._target)
        except OSError as exc:
            log.debug("sd_notify to %s failed: %s", self.address, exc)
            return False
        return True

    def ready(self, status: str = "") -> bool:
        return self.send("READY=1", *(["STATUS=" + one_line(status)] if status else []))

    def status(self, text: str) -> bool:
        return self.send("STATUS=" + one_line(text))

    def reloading(self) -> bool:
        return self.send("RELOADING=1")

    def stopping(self, status: str = "") -> bool:
        return self.send("STOPPING=1", *(["STATUS=" + one_line(status)] if status else []))

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def watchdog_if_due(self, now: float) -> bool:
        """Ping if the watchdog is on and half its timeout has passed since the last ping."""
        interval = self.watchdog_interval_s
        if interval is None or (self._last_ping is not None and now - self._last_ping < interval):
            return False
        self._last_ping = now
        return self.watchdog()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
