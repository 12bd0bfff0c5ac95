"""A Ray head node on this machine (``ray start --head --block``), for trying the pool on one machine,
its tests and its benchmark. On a real site the head is started by hand (docs/pool.md).

The head runs in its own session with its own temporary directory, so ``stop()`` signals only the
processes it started (its process group), never another Ray on the machine.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RayHead:
    """``ray start --head --block`` with ``num_cpus`` logical CPUs; ``address`` is HOST:PORT for ``--ray-address``."""

    def __init__(self, num_cpus: int = 4, start_timeout_s: float = 120.0):
        self.temp_dir = tempfile.mkdtemp(prefix="esray-")  # short: Ray's unix socket paths must stay < 108 bytes
        port = _free_port()
        self.address = "127.0.0.1:%d" % port
        self._log = open(os.path.join(self.temp_dir, "head.log"), "w+b")
        self.proc = subprocess.Popen(
            [RAY, "start", "--head", "--block", "--node-ip-address=127.0.0.1", "--port=%d" % port,
             "--num-cpus=%d" % num_cpus, "--include-dashboard=false", "--disable-usage-stats",
             "--temp-dir=%s" % self.temp_dir],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
            env=dict(os.environ, RAY_USAGE_STATS_ENABLED="0"))
        end = time.monotonic() + start_timeout_s
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("ray start --head exited %s:\n%s" % (self.proc.returncode, self.log_text()[-3000:]))
            if re.search(r"ray start --address=", self.log_text()):
                return
            time.sleep(0.25)
        self.stop()
        raise RuntimeError("ray start --head was not ready within %.0f s:\n%s" % (start_timeout_s, self.log_text()))

    def log_text(self) -> str:
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")

    def stop(self) -> None:
        """SIGTERM to the head's process group (``--block`` then stops what it started), SIGKILL what is left."""
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._log.close()
        shutil.rmtree(self.temp_dir, ignore_errors=True)
