"""Defect 3: maximal valid requests used to leave the peer at 6.5 GB and the daemon at 1.6 GB, never
given back (onnxruntime's CPU arena keeps each run's peak). Now both return to within
``MARGIN_KIB`` of their warmed-up baseline: sessions run without the arena and, after a request over
4 MiB, free heap memory is handed back with ``malloc_trim`` (runtime/memory.py)."""
import numpy as np

from edgesplit.runtime.bundle.store import load_bundle
from edgesplit.runtime.default_bundle import default_bundle_path
from edgesplit.runtime.transport.client import PeerClient
from support.daemon_process import heldout

MARGIN_KIB = 32 * 1024
MAX_BYTES = 64 * 1024 * 1024


def _batch(rows):
    return np.resize(heldout(500), (rows,) + heldout(1).shape[1:]).astype(np.float32)


def test_peer_gives_memory_back_after_two_maximal_requests(make_peer):
    bundle = load_bundle(default_bundle_path())
    peer = make_peer(default_bundle_path(), extra=["--max-bytes", str(MAX_BYTES)])
    small = heldout(1)
    big = _batch(MAX_BYTES // small.nbytes - 16)  # just under the peer's byte limit
    with PeerClient(peer.endpoint, bundle.wire_hash) as client:
        for _ in range(10):
            assert client.offload(0, {"image": small}, 10.0).ok
        baseline = peer.rss_kib()
        for _ in range(2):
            assert client.offload(0, {"image": big}, 300.0).ok
        for _ in range(10):
            assert client.offload(0, {"image": small}, 10.0).ok
        after = peer.rss_kib()
    assert after - baseline < MARGIN_KIB, (baseline, after)
    assert peer.stop()[0] == 0


def test_daemon_gives_memory_back_after_large_batches(make_daemon):
    daemon = make_daemon().start()
    small = heldout(1)
    big = _batch(4800)  # 14.4 MiB, under api.max_input_mb = 16
    with daemon.client(timeout_s=300.0) as client:
        for _ in range(10):
            assert client.submit(small).ok
        baseline = daemon.rss_kib()
        for _ in range(3):
            assert client.submit(big, deadline_ms=300000).ok
        for _ in range(10):
            assert client.submit(small).ok
        after = daemon.rss_kib()
    assert after - baseline < MARGIN_KIB, (baseline, after)
    assert daemon.stop() == 0
