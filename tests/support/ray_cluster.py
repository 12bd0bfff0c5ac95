"""A real local Ray cluster (``ray start --head --block``) and ``edgesplit pool`` front ends as subprocesses.

The head runs in its own session with its own temporary directory, so stopping it signals only the
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
from typing import List, Optional, Sequence

from edgesplit.runtime.peer.process import PeerProcess

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


def pool_command(bundle: str, ray_address: str, extra: Sequence[str] = ()) -> List[str]:
    return ([sys.executable, "-m", "edgesplit.runtime.cli", "pool", bundle, "--ray-address", ray_address,
             "--bind", "tcp://127.0.0.1:*", "--json"] + list(extra))


def start_front_end(bundle: str, ray_address: str, extra: Sequence[str] = (),
                    start_timeout_s: float = 180.0) -> PeerProcess:
    """An ``edgesplit pool`` front end: the same ready line and stop() as an ``edgesplit peer`` process."""
    argv = pool_command(bundle, ray_address, extra)
    return PeerProcess(bundle, launcher=lambda _: argv, start_timeout_s=start_timeout_s)


def stopped_line(front_end: PeerProcess, sig: int = signal.SIGTERM) -> Optional[dict]:
    """Stop a front end and return its ``stopped`` JSON line (stats, CPU seconds), if it printed one."""
    import json

    _, out, _ = front_end.stop(sig, timeout_s=30.0)
    for line in out.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("event") == "stopped":
            return record
    return None


def ray_installed() -> bool:
    try:
        import ray  # noqa: F401
        from ray import serve  # noqa: F401
    except ImportError:
        return False
    return os.path.exists(RAY)

