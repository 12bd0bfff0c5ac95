"""Fixtures for the hostile-input and fault tests: real peer and daemon processes on loopback."""
import signal

import pytest

from support.daemon_process import DaemonProcess  # noqa: E402
from support.peer_process import PeerProcess  # noqa: E402
from support.tiny_bundle import write_tiny_bundle  # noqa: E402


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory):
    return write_tiny_bundle(tmp_path_factory.mktemp("bundles") / "tiny")


@pytest.fixture
def make_peer():
    started = []

    def start(bundle_dir, bind="tcp://127.0.0.1:*", extra=()):
        peer = PeerProcess(bundle_dir, bind, extra)
        started.append(peer)
        return peer

    yield start
    for peer in started:
        peer.stop(signal.SIGKILL)


@pytest.fixture
def make_daemon(tmp_path):
    started = []

    def make(extra_toml: str = "", **kwargs) -> DaemonProcess:
        workdir = tmp_path / ("d%d" % len(started))
        workdir.mkdir()
        daemon = DaemonProcess(workdir, extra_toml, **kwargs)
        started.append(daemon)
        return daemon

    yield make
    for daemon in started:
        daemon.cleanup()
