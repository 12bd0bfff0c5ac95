"""Fixtures: the tiny bundle, an in-process peer thread, and real ``edgesplit peer`` subprocesses."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.executor.executor import Executor
from runtime.peer.background import BackgroundPeer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiny_bundle import write_tiny_bundle  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory):
    return write_tiny_bundle(tmp_path_factory.mktemp("bundles") / "tiny")


@pytest.fixture(scope="session")
def other_bundle(tmp_path_factory):
    """Same shapes, other weights: a different bundle hash."""
    return write_tiny_bundle(tmp_path_factory.mktemp("bundles") / "other", seed=1)


@pytest.fixture(scope="session")
def executor(tiny_bundle):
    return Executor(tiny_bundle)


@pytest.fixture
def peer_thread(executor):
    with BackgroundPeer(executor) as peer:
        yield peer


class PeerProcess:
    """``edgesplit peer`` as a real subprocess; ``endpoint`` is read from its JSON ready line."""

    def __init__(self, bundle_dir, bind="tcp://127.0.0.1:*", extra=()):
        self.args = [sys.executable, "-m", "runtime.cli", "peer", str(bundle_dir), "--bind", bind, "--json"]
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


@pytest.fixture
def peer_process_factory():
    started = []

    def start(bundle_dir, bind="tcp://127.0.0.1:*", extra=()):
        peer = PeerProcess(bundle_dir, bind, extra)
        started.append(peer)
        return peer

    yield start
    for peer in started:
        peer.stop(signal.SIGKILL)
