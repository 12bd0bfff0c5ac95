"""``edgesplit peer`` as a real subprocess for the peer tests: the product's ``PeerProcess`` plus its RSS."""
from edgesplit.runtime.peer.process import PeerProcess as _ProductPeerProcess


class PeerProcess(_ProductPeerProcess):
    def rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS for pid %d" % self.proc.pid)
