"""Fixtures every test folder may use: real peer and daemon processes, stopped after the test."""
import signal

import pytest

from support.daemon_process import DaemonProcess
from support.peer_process import PeerProcess


@pytest.fixture
def make_peer():
    """``make_peer(bundle_dir, bind=..., extra=())`` starts an ``edgesplit peer`` subprocess."""
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
    """``make_daemon(extra_toml, **DaemonProcess options)`` writes a config; call ``.start()`` on it."""
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
