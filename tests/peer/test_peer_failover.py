"""Peer gone mid-request: the client answers with a timeout value in time; peer back: offloading resumes."""
import os
import signal
import threading
import time

import numpy as np
import pytest

from edgesplit.runtime.transport.client import PeerClient


def _x():
    return np.ones((1, 4), np.float32)


def _wait_alive(client, limit_s=15.0):
    give_up = time.monotonic() + limit_s
    while time.monotonic() < give_up:
        if client.maybe_probe():
            return True
        time.sleep(0.05)
    return False


def test_peer_killed_mid_request_then_restarted(make_peer, tiny_bundle):
    peer = make_peer(tiny_bundle.root)
    endpoint = peer.endpoint
    client = PeerClient(endpoint, tiny_bundle.hash, probe_backoff_s=(0.1, 0.5), probe_timeout_s=0.5)
    try:
        assert client.offload(0, {"x": _x()}, 5.0).ok

        # Freeze the peer so the request is in flight when it dies, then kill it.
        os.kill(peer.pid, signal.SIGSTOP)
        killer = threading.Timer(0.3, os.kill, (peer.pid, signal.SIGKILL))
        killer.start()
        deadline_s = 1.5
        started = time.monotonic()
        outcome = client.offload(0, {"x": _x()}, deadline_s)
        elapsed = time.monotonic() - started
        killer.join()
        assert outcome.status == "timeout" and outcome.output is None
        assert elapsed < deadline_s + 1.0  # returned by the deadline, not hung
        assert not client.peer_alive
        peer.stop(signal.SIGKILL)

        # While the peer is down, probes fail quietly and offloads time out as values.
        assert not _wait_alive(client, limit_s=1.0)
        assert client.offload(0, {"x": _x()}, 0.2).status == "timeout"

        make_peer(tiny_bundle.root, bind=endpoint)
        assert _wait_alive(client), "peer restarted but the client never saw it"
        again = client.offload(0, {"x": _x()}, 5.0)
        assert again.ok and again.exit_id is not None
    finally:
        client.close()


def test_offload_resumes_without_probes_after_restart(make_peer, tiny_bundle):
    peer = make_peer(tiny_bundle.root)
    endpoint = peer.endpoint
    client = PeerClient(endpoint, tiny_bundle.hash)
    try:
        peer.stop(signal.SIGKILL)
        assert client.offload(0, {"x": _x()}, 0.3).status == "timeout"
        make_peer(tiny_bundle.root, bind=endpoint)
        outcomes = [client.offload(0, {"x": _x()}, 2.0) for _ in range(3)]
        assert any(o.ok for o in outcomes) and client.peer_alive
    finally:
        client.close()


def test_sigterm_stops_the_peer_cleanly(make_peer, tiny_bundle):
    peer = make_peer(tiny_bundle.root, extra=["--json-log"])
    with PeerClient(peer.endpoint, tiny_bundle.hash) as client:
        assert client.offload(0, {"x": _x()}, 5.0).ok
    code, out, err = peer.stop(signal.SIGTERM)
    assert code == 0
    assert '"served": 1' in out and '"event": "stopped"' in out
    assert '"level": "INFO"' in err  # --json-log: one JSON object per log line


def test_a_peer_that_cannot_start_says_why(tmp_path):
    from edgesplit.runtime.peer.process import PeerProcess as ProductPeerProcess, PeerStartError

    with pytest.raises(PeerStartError, match=r"(?s)instead of its ready line.*no-bundle"):
        ProductPeerProcess(tmp_path / "no-bundle")
