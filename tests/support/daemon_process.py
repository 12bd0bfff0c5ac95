"""``edgesplit serve`` as a real subprocess for tests, with a config written per test.

Part of tests/support. Sockets live in a short temporary folder: a unix
socket path must stay under ~100 bytes.
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from edgesplit.runtime.api.client import ApiClient

ROOT = Path(__file__).resolve().parents[2]


def write_policy(path: Path, seed: int, n_exits: int = 2, n_cuts: int = 4) -> str:
    """A small linear EdgeML policy for the embedded bundle (2 early exits, cuts 0..3); returns its id."""
    from edgesplit.policies_lite import edgeml_decoder, save_policy
    from edgesplit.runtime.controller.state import FEATURES

    rng = np.random.default_rng(seed)
    n_out = n_exits + 2
    weights = 0.1 * rng.standard_normal((n_out, len(FEATURES)))
    bias = np.zeros(n_out)
    bias[n_exits] = 10.0  # cut logit high: with scale "index" the cut saturates at the last one (local)
    return save_policy(path, features=list(FEATURES), layers=[(weights, bias)], activations=["identity"],
                       decoder=edgeml_decoder(n_exits, n_cuts), provenance={"test": "seed %d" % seed})


def heldout(count: int) -> np.ndarray:
    from edgesplit.runtime.default_bundle import load_heldout

    images, _ = load_heldout()
    return images[:count]


class DaemonProcess:
    def __init__(self, workdir: Path, extra_toml: str = "", env: Optional[Dict[str, str]] = None,
                 queue_size: int = 64, python: str = sys.executable, model: str = "", board: str = "x86_cpu",
                 log_level: str = "info"):
        """``model``: extra lines for [model]; ``extra_toml``: further tables ([peer], [debug], ...)."""
        self.workdir = workdir
        self.sockdir = Path(tempfile.mkdtemp(prefix="es-", dir="/tmp"))
        self.socket = self.sockdir / "api.sock"
        self.traces = workdir / "traces.db"
        self.config = workdir / "edgesplit.toml"
        self.log = workdir / "daemon.log"
        self.config.write_text(
            'log_level = "%s"\n[model]\nboard = "%s"\n%s\n[traces]\npath = "%s"\nflush_interval_s = 0.2\n'
            '[api]\nsocket = "%s"\nqueue_size = %d\n%s\n'
            % (log_level, board, model, self.traces, self.socket, queue_size, extra_toml))
        self.env = dict(os.environ, **(env or {}))
        self.python = python
        self.process = None  # type: Optional[subprocess.Popen]

    def start(self, timeout_s: float = 30.0) -> "DaemonProcess":
        self._log_handle = open(str(self.log), "ab")
        self.process = subprocess.Popen([self.python, "-m", "edgesplit.runtime.cli", "serve", "--config", str(self.config)],
                                        env=self.env, stdout=self._log_handle, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("daemon exited with %s:\n%s" % (self.process.returncode, self.log.read_text()))
            if self.socket.exists():
                with ApiClient(str(self.socket), timeout_s=1.0) as client:
                    if client.ping():
                        return self
            time.sleep(0.05)
        raise RuntimeError("daemon not answering within %.0f s:\n%s" % (timeout_s, self.log.read_text()))

    def client(self, timeout_s: float = 10.0, transport: str = "auto", spin_us: float = 0.0) -> ApiClient:
        """``transport="zmq"`` for a test that sends raw frames on ``client._sock`` (a ZeroMQ DEALER)."""
        return ApiClient(str(self.socket), timeout_s=timeout_s, transport=transport, spin_us=spin_us)

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def rss_kib(self) -> int:
        with open("/proc/%d/status" % self.process.pid) as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def stop(self, timeout_s: float = 30.0) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log_handle.close()
        return self.process.returncode

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)

    def cleanup(self) -> None:
        self.kill()
        shutil.rmtree(str(self.sockdir), ignore_errors=True)
