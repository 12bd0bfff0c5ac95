"""A kernel-shaped link for tests and benchmarks (needs root): two network namespaces joined by
a veth pair, each end rate-limited with ``tc ... tbf``. This kernel has no netem, so the link
has a rate but no added delay or loss.

Only addresses inside the namespaces this creates are used; ``close()`` deletes both namespaces
(which removes the veth pair and its qdiscs with them).
"""
import logging
import os
import shutil
import subprocess
from typing import List, Optional, Sequence

log = logging.getLogger(__name__)


def unavailable_reason() -> Optional[str]:
    """Why a NamespacePair cannot be made here, or None when it can."""
    if os.geteuid() != 0:
        return "needs root (network namespaces and tc)"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return "the %r command is not installed (iproute2)" % tool
    probe = "edgesplit-probe-%d" % os.getpid()
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return "ip netns add failed: %s" % made.stderr.strip()
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


class NamespacePair:
    """``device`` and ``peer`` namespaces; ``device_ip``/``peer_ip`` are their veth addresses."""

    def __init__(self, tag: str = "", subnet: str = "10.213.77"):
        suffix = "%s%d" % (tag, os.getpid() % 100000)
        self.device = "es-dev-" + suffix
        self.peer = "es-peer-" + suffix
        self._veth = ("esd%d" % (os.getpid() % 100000), "esp%d" % (os.getpid() % 100000))
        self.device_ip = subnet + ".1"
        self.peer_ip = subnet + ".2"
        self._created = []  # type: List[str]
        try:
            self._create()
        except BaseException:
            self.close()
            raise

    def _run(self, *argv: str) -> None:
        done = subprocess.run(list(argv), capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError("%s failed: %s" % (" ".join(argv), done.stderr.strip()))

    def _create(self) -> None:
        for ns in (self.device, self.peer):
            self._run("ip", "netns", "add", ns)
            self._created.append(ns)
        dev, peer = self._veth
        self._run("ip", "link", "add", dev, "type", "veth", "peer", "name", peer)
        self._run("ip", "link", "set", dev, "netns", self.device)
        self._run("ip", "link", "set", peer, "netns", self.peer)
        for ns, iface, ip in ((self.device, dev, self.device_ip), (self.peer, peer, self.peer_ip)):
            self._run("ip", "-n", ns, "addr", "add", ip + "/24", "dev", iface)
            self._run("ip", "-n", ns, "link", "set", iface, "up")
            self._run("ip", "-n", ns, "link", "set", "lo", "up")

    def set_rate(self, rate_bps: float, sides: Sequence[str] = ("device", "peer")) -> None:
        """Shape egress of the named ends with tbf (``replace`` both adds and changes)."""
        # burst must cover one timer tick at the rate (HZ >= 100) and a full-size packet.
        burst = max(16 * 1024, int(rate_bps / 8 / 100))
        for side in sides:
            ns, iface = (self.device, self._veth[0]) if side == "device" else (self.peer, self._veth[1])
            self._run("tc", "-n", ns, "qdisc", "replace", "dev", iface, "root", "tbf", "rate", "%dbit" % int(rate_bps),
                      "burst", str(burst), "latency", "200ms")

    def exec_args(self, side: str, argv: Sequence[str]) -> List[str]:
        """``argv`` run inside the ``device`` or ``peer`` namespace."""
        return ["ip", "netns", "exec", self.device if side == "device" else self.peer] + list(argv)

    def close(self) -> None:
        for ns in reversed(self._created):
            done = subprocess.run(["ip", "netns", "del", ns], capture_output=True, text=True)
            if done.returncode != 0:
                log.warning("could not delete namespace %s: %s", ns, done.stderr.strip())
        self._created = []

    def __enter__(self) -> "NamespacePair":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
