"""A device given an ordered list of peers (front ends) uses the first that answers and fails over
to the next when it goes away, coming back to the first once a probe answers. Real peers in
subprocesses, real ZeroMQ sockets."""
import signal
import time

import numpy as np
import pytest

from edgesplit.runtime.bundle.store import load_bundle
from edgesplit.runtime.default_bundle import default_bundle_path
from edgesplit.runtime.errors import InputError
from edgesplit.runtime.executor.executor import Executor
from edgesplit.runtime.default_bundle import load_heldout
from edgesplit.runtime.transport.endpoint import peer_endpoints
from edgesplit.runtime.transport.failover import PeerFailover

from support.waiting import wait_until


@pytest.fixture(scope="module")
def cut_tensors():
    bundle = load_bundle(default_bundle_path())
    images, _ = load_heldout()
    result = Executor(bundle).run(images[:1], stop_at_cut=1, use_exits=False)
    return bundle.wire_hash, result.stopped_at_cut, result.live


def test_peer_endpoints_parses_an_ordered_list_and_names_the_bad_one():
    assert peer_endpoints("127.0.0.1:5555, tcp://10.0.0.2:5556", "--peer") == [
        "tcp://127.0.0.1:5555", "tcp://10.0.0.2:5556"]
    with pytest.raises(InputError, match=r"--peer .*10\.0\.0\.2:x.*port"):
        peer_endpoints("tcp://127.0.0.1:5555,10.0.0.2:x", "--peer")
    with pytest.raises(InputError, match="empty"):
        peer_endpoints("tcp://127.0.0.1:5555,,", "--peer")
    with pytest.raises(InputError, match="twice"):
        peer_endpoints("tcp://127.0.0.1:5555,127.0.0.1:5555", "--peer")


def test_offloads_fail_over_to_the_next_peer_and_return_to_the_first(make_peer, cut_tensors):
    wire_hash, cut, live = cut_tensors
    first, second = make_peer(default_bundle_path()), make_peer(default_bundle_path())
    client = PeerFailover.connect([first.endpoint, second.endpoint], wire_hash,
                                  probe_backoff_s=(0.05, 0.2), probe_timeout_s=0.5)
    try:
        outcome = client.offload(cut, live, deadline_s=2.0)
        assert outcome.ok and client.address == first.endpoint
        first.stop(signal.SIGKILL)
        # The first peer's offload times out (the task falls back locally); the next goes to the second.
        lost = client.offload(cut, live, deadline_s=0.5)
        assert not lost.ok and client.peer_alive
        outcome = client.offload(cut, live, deadline_s=2.0)
        assert outcome.ok and client.address == second.endpoint
        assert outcome.output.shape == (1, 10)
        # The first comes back on the same port: a probe finds it and offloads return there.
        port = first.endpoint.rsplit(":", 1)[1]
        make_peer(default_bundle_path(), bind="tcp://127.0.0.1:%s" % port)
        assert wait_until(lambda: client.maybe_probe() and client.address == first.endpoint)
        assert client.offload(cut, live, deadline_s=2.0).ok
    finally:
        client.close()


def test_all_peers_down_is_peer_alive_false_until_one_answers(make_peer, cut_tensors):
    wire_hash, cut, live = cut_tensors
    first, second = make_peer(default_bundle_path()), make_peer(default_bundle_path())
    client = PeerFailover.connect([first.endpoint, second.endpoint], wire_hash,
                                  probe_backoff_s=(0.05, 0.2), probe_timeout_s=0.5)
    try:
        assert client.offload(cut, live, deadline_s=2.0).ok
        second_port = second.endpoint.rsplit(":", 1)[1]
        first.stop(signal.SIGKILL)
        second.stop(signal.SIGKILL)
        client.offload(cut, live, deadline_s=0.3)
        client.offload(cut, live, deadline_s=0.3)
        assert not client.peer_alive
        make_peer(default_bundle_path(), bind="tcp://127.0.0.1:%s" % second_port)
        assert wait_until(lambda: client.maybe_probe())
        assert client.address == "tcp://127.0.0.1:%s" % second_port
        assert client.offload(cut, live, deadline_s=2.0).ok
    finally:
        client.close()


def test_one_peer_is_a_plain_client(cut_tensors, make_peer):
    wire_hash, cut, live = cut_tensors
    peer = make_peer(default_bundle_path())
    client = PeerFailover.connect([peer.endpoint], wire_hash)
    try:
        assert client.offload(cut, live, deadline_s=2.0).ok
        assert client.link_estimate() is not None
        assert np.isfinite(client.probe(timeout_s=1.0).round_trip_s)
    finally:
        client.close()
