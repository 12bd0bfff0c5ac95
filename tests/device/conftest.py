import signal
import socket
import sys

import numpy as np
import pytest

from edgesplit.runtime.default_bundle import default_bundle_path, load_heldout
from edgesplit.runtime.peer.process import PeerProcess

EDGESPLIT = [sys.executable, "-m", "edgesplit.runtime.cli"]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def free_port():
    return _free_port()


@pytest.fixture
def edgesplit():
    return list(EDGESPLIT)


@pytest.fixture
def peers():
    started = []

    def start(port):
        peer = PeerProcess(default_bundle_path(), bind="tcp://127.0.0.1:%d" % port)
        started.append(peer)
        return peer

    yield start
    for peer in started:
        peer.stop(signal.SIGKILL)


@pytest.fixture(scope="session")
def heldout_files(tmp_path_factory):
    images, labels = load_heldout()
    base = tmp_path_factory.mktemp("heldout")
    x, y = base / "x.npy", base / "y.npy"
    reps = 2
    np.save(str(x), np.concatenate([images] * reps)[:800])
    np.save(str(y), np.concatenate([labels] * reps)[:800])
    return str(x), str(y)
