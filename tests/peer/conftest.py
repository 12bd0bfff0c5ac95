"""Fixtures: the tiny bundle, an in-process peer thread, and real ``edgesplit peer`` subprocesses."""
from pathlib import Path

import pytest

from edgesplit.runtime.executor.executor import Executor
from edgesplit.runtime.peer.background import BackgroundPeer
from support.tiny_bundle import write_tiny_bundle  # noqa: E402
from support.peer_process import PeerProcess  # noqa: E402,F401

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
