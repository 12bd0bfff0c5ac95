"""``edgesplit peer`` as a real subprocess, shared by the peer tests (imported by a unique name)."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


class PeerProcess:
    """``edgesplit peer`` as a real subprocess; ``endpoint`` is read from its JSON ready line."""

    def __init__(self, bundle_dir, bind="tcp://127.0.0.1:*", extra=()):
        self.args = [sys.executable, "-m", "edgesplit.runtime.cli", "peer", str(bundle_dir), "--bind", bind, "--json"]
        self.args += list(extra)
        self.proc = subprocess.Popen(self.args, cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=dict(os.environ, PYTHONUNBUFFERED="1"))
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("peer did not start: %s" % self.proc.stderr.read().decode(errors="replace"))
        self.ready = json.loads(line)
        self.endpoint = self.ready["endpoint"]

    @property
    def pid(self):
        return self.proc.pid

    def rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS for pid %d" % self.proc.pid)

    def stop(self, sig=signal.SIGTERM, timeout=10):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        out, err = self.proc.communicate()
        return self.proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")
