"""Requests that wait together are answered as each would be alone: without batching they run one after
another and are answered after the group (``PeerServer._run_group``), with batching they share a pass
checked once on all rows (``PeerServer._run_batch``). Real sockets, a real onnxruntime executor; the
serve loop is stepped by hand so that every request is waiting before the peer looks."""
import time

import numpy as np
import pytest
import zmq

from edgesplit.runtime.bundle.store import load_bundle
from edgesplit.runtime.default_bundle import default_bundle_path
from edgesplit.runtime.errors import InputError
from edgesplit.runtime.executor.executor import Executor
from edgesplit.runtime.peer.batching import BatchPolicy
from edgesplit.runtime.peer.server import PeerServer
from edgesplit.runtime.transport import wire


@pytest.fixture(scope="module")
def executor():
    return Executor(load_bundle(default_bundle_path()))


def _requests():
    """(cut, feeds, thresholds, use_exits, deadline_s) per device: good ones of 1 and 2 rows at cut 2, one
    with a NaN, one of the wrong shape, one with the wrong number of thresholds, one whose deadline has
    passed by its turn, one whose path passes an exit."""
    rng = np.random.default_rng(11)
    block = lambda rows: rng.standard_normal((rows, 32, 7, 7)).astype(np.float32)
    good = [(2, {"block2_out": block(rows)}, None, True, 30.0) for rows in (1, 2, 1, 1, 2, 1, 1, 1)]
    poisoned = block(1)
    poisoned[0, 5, 3, 3] = np.inf
    return good[:3] + [
        (2, {"block2_out": poisoned}, None, True, 30.0),
        (2, {"block2_out": rng.standard_normal((1, 32, 7, 8)).astype(np.float32)}, None, True, 30.0),
        (2, {"block2_out": block(1)}, [0.5], True, 30.0),
        (2, {"block2_out": block(1)}, None, True, 1e-9),
        (1, {"block1_out": rng.standard_normal((1, 16, 14, 14)).astype(np.float32)}, [0.5, 0.5], True, 30.0),
    ] + good[3:]


def _alone(executor, cut, feeds, thresholds, use_exits, deadline_s):
    """What the device should get: (status, exit, output or the refusal's words)."""
    if deadline_s < 1e-6:
        return "expired", None, None
    try:
        result = executor.run_from(cut, feeds, thresholds, use_exits)
    except InputError as exc:
        return "bad_request", None, str(exc)
    return "ok", result.exit_id, result.output


@pytest.mark.parametrize("max_batch", [1, 16])
def test_requests_waiting_together_get_the_answers_each_would_get_alone(executor, max_batch):
    server = PeerServer(executor, batch=BatchPolicy(max_batch, 0.0))
    endpoint = server.bind("tcp://127.0.0.1:*")
    context = zmq.Context.instance()
    requests = _requests()
    devices = []
    try:
        for request_id, (cut, feeds, thresholds, use_exits, deadline_s) in enumerate(requests, start=1):
            sock = context.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(endpoint)
            devices.append(sock)
            sock.send_multipart(wire.encode_request(request_id, "infer", executor.bundle.wire_hash, cut, deadline_s,
                                                    feeds, thresholds, use_exits), copy=False)
        time.sleep(0.5)  # every request waits in the peer's socket before its loop takes the first
        replies = {}
        for _ in range(200):
            server.serve_once(50)
            for index, sock in enumerate(devices):
                if index not in replies and sock.poll(0):
                    replies[index] = wire.decode_reply(sock.recv_multipart(copy=False))
            if len(replies) == len(devices):
                break
    finally:
        for sock in devices:
            sock.close()
        server.close()
    assert len(replies) == len(devices), "not every device was answered"
    for index, request in enumerate(requests):
        reply = replies[index]
        status, exit_id, expected = _alone(executor, *request)
        assert (reply.request_id, reply.status) == (index + 1, status), (index, reply)
        if status == "bad_request":
            assert reply.message == expected, index
        elif status == "ok":
            assert reply.exit_id == exit_id, index
            (got,) = reply.tensors.values()
            if max_batch == 1:  # the very run the device would get alone
                np.testing.assert_array_equal(got, expected)
            else:
                np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    stats = server.stats
    assert (stats.served, stats.expired, stats.bad_requests) == (9, 1, 3), stats
    if max_batch == 1:
        assert stats.batches == 0
    else:  # the good cut-2 requests share passes; the others each ran alone
        assert stats.batches >= 1 and stats.batched >= 2, stats
