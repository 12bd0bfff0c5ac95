"""Dynamic batching on ``edgesplit peer`` (--max-batch, --batch-window-us): requests from several devices
run as one pass, each device gets its own rows back, a bad request never spoils a batch, and a batch
never holds a request past its deadline. Real peer processes, real ZeroMQ devices."""
import json

import numpy as np
import pytest
import zmq

from edgesplit.runtime.bundle.store import load_bundle
from edgesplit.runtime.default_bundle import default_bundle_path
from edgesplit.runtime.executor.executor import Executor
from edgesplit.runtime.fair_queue import FairQueue
from edgesplit.runtime.peer.batching import batchable_cuts
from edgesplit.runtime.transport import wire


@pytest.fixture(scope="module")
def bundle():
    return load_bundle(default_bundle_path())


def _devices(endpoint, count):
    context = zmq.Context.instance()
    socks = []
    for _ in range(count):
        sock = context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(endpoint)
        socks.append(sock)
    return socks


def _answer(sock, timeout_ms=20000):
    assert sock.poll(timeout_ms), "no answer from the peer"
    reply = wire.decode_reply(sock.recv_multipart(copy=False))
    assert isinstance(reply, wire.Reply), reply
    return reply


def _stopped_stats(peer):
    code, out, err = peer.stop()
    assert code == 0, err
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")][-1]


def test_requests_waiting_together_run_as_one_pass_and_each_device_gets_its_own_rows(make_peer, bundle):
    peer = make_peer(default_bundle_path(), extra=["--max-batch", "8", "--batch-window-us", "1000000"])
    rng = np.random.default_rng(3)
    inputs = [rng.standard_normal((rows, 32, 7, 7)).astype(np.float32) for rows in (1, 2, 1)]
    devices = _devices(peer.endpoint, 3)
    # Deadlines of 30 s: the one-second window closes long before half of any deadline.
    for request_id, (sock, block) in enumerate(zip(devices, inputs), start=1):
        sock.send_multipart(wire.encode_request(request_id, "infer", bundle.wire_hash, 2, 30.0, {"block2_out": block}),
                            copy=False)
    replies = [_answer(sock) for sock in devices]
    executor = Executor(bundle)
    for request_id, (reply, block) in enumerate(zip(replies, inputs), start=1):
        assert (reply.status, reply.request_id) == ("ok", request_id), reply
        alone = executor.run_from(2, {"block2_out": block}).output
        np.testing.assert_allclose(reply.tensors["logits"], alone, rtol=1e-4, atol=1e-5)
    stats = _stopped_stats(peer)
    assert (stats["batches"], stats["batched"], stats["served"]) == (1, 3, 3), stats


def test_a_bad_request_is_answered_alone_and_the_batch_still_runs(make_peer, bundle):
    peer = make_peer(default_bundle_path(), extra=["--max-batch", "8", "--batch-window-us", "1000000"])
    good, bad, other = _devices(peer.endpoint, 3)
    block = np.ones((1, 32, 7, 7), np.float32)
    poisoned = block.copy()
    poisoned[0, 3, 2, 1] = np.nan
    for sock, feed in ((good, block), (bad, poisoned), (other, block)):
        sock.send_multipart(wire.encode_request(7, "infer", bundle.wire_hash, 2, 30.0, {"block2_out": feed}),
                            copy=False)
    answers = {name: _answer(sock) for name, sock in (("good", good), ("bad", bad), ("other", other))}
    assert answers["bad"].status == "bad_request" and "non-finite" in answers["bad"].message, answers["bad"]
    assert answers["good"].status == answers["other"].status == "ok", answers
    np.testing.assert_array_equal(answers["good"].tensors["logits"], answers["other"].tensors["logits"])
    stats = _stopped_stats(peer)
    assert (stats["batched"], stats["bad_requests"]) == (2, 1), stats


def test_a_batch_stops_waiting_before_a_request_deadline(make_peer, bundle):
    # A 1-second window, a 0.6-second deadline and nobody else asking: waiting the whole window would
    # answer 'expired'.
    peer = make_peer(default_bundle_path(), extra=["--max-batch", "16", "--batch-window-us", "1000000"])
    (sock,) = _devices(peer.endpoint, 1)
    sock.send_multipart(wire.encode_request(1, "infer", bundle.wire_hash, 2, 0.6,
                                            {"block2_out": np.ones((1, 32, 7, 7), np.float32)}), copy=False)
    reply = _answer(sock)
    assert (reply.status, reply.request_id) == ("ok", 1), reply
    assert _stopped_stats(peer)["expired"] == 0


def test_requests_whose_path_has_an_early_exit_run_one_at_a_time(make_peer, bundle):
    # From cut 1 the path passes exit 1: one pass decides an exit for all its rows, so these never batch.
    peer = make_peer(default_bundle_path(), extra=["--max-batch", "8", "--batch-window-us", "500000"])
    devices = _devices(peer.endpoint, 2)
    for sock in devices:
        sock.send_multipart(wire.encode_request(1, "infer", bundle.wire_hash, 1, 30.0,
                                                {"block1_out": np.ones((1, 16, 14, 14), np.float32)}), copy=False)
    assert [_answer(sock).status for sock in devices] == ["ok", "ok"]
    stats = _stopped_stats(peer)
    assert (stats["batches"], stats["served"]) == (0, 2), stats


def test_batch_flags_are_checked(make_peer):
    import subprocess
    import sys

    for flags, word in ((["--max-batch", "0"], "--max-batch"), (["--batch-window-us", "-1"], "--batch-window-us"),
                        (["--max-queue", "0"], "--max-queue must be at least 1"),
                        (["--threads", "-2"], "--threads must be at least 1")):
        done = subprocess.run([sys.executable, "-m", "edgesplit.runtime.cli", "peer", "default", "--bind",
                               "tcp://127.0.0.1:*"] + flags, capture_output=True, text=True, timeout=120)
        assert done.returncode != 0 and word in done.stderr, (flags, done.returncode, done.stderr)


def test_batchable_cuts_follow_the_manifest(bundle):
    # Every shape of the default bundle has a dynamic batch dimension.
    assert batchable_cuts(bundle.manifest) == frozenset({0, 1, 2})


def test_fair_queue_take_goes_round_robin_and_keeps_each_device_in_order():
    queue = FairQueue(capacity=100, capacity_bytes=10 ** 9)
    for item in ("a0", "a1", "a2", "b0", "c0", "c1"):
        queue.offer(item[0], item, 1)
    # c's oldest is refused: c keeps its order (c1 is not taken before c0).
    assert queue.take(lambda item: item != "c0", 10) == ["a0", "b0", "a1", "a2"]
    assert queue.take(lambda item: True, 1) == ["c0"]
    assert [queue.pop(), queue.pop()] == ["c1", None] and len(queue) == 0 and queue.nbytes == 0


def test_the_lean_pass_gives_run_from_s_result_and_refusals(bundle):
    from edgesplit.runtime.errors import InputError

    executor = Executor(bundle)
    rng = np.random.default_rng(5)
    for cut in range(len(bundle.manifest.cuts)):
        live = {t.name: rng.standard_normal([2] + list(t.shape[1:])).astype(t.dtype)
                for t in bundle.manifest.cuts[cut].tensors}
        output, seconds = executor.run_plain(cut, live)
        np.testing.assert_array_equal(output, executor.run_from(cut, live, use_exits=False).output)
        assert seconds >= 0.0
    with pytest.raises(InputError, match="thresholds"):
        executor.run_plain(2, {"block2_out": np.ones((1, 32, 7, 7), np.float32)}, thresholds=[0.5])
    with pytest.raises(InputError, match="no cut 9"):
        executor.run_plain(9, {})


def test_only_requests_shaped_like_the_cut_can_share_a_pass():
    from edgesplit.runtime.peer.batching import CutLayout, batch_key

    layout = CutLayout(("a", "b"), (np.dtype("float32"), np.dtype("int64")), ((3,), (None, 2)))
    good = {"a": np.zeros((2, 3), np.float32), "b": np.zeros((2, 5, 2), np.int64)}
    assert batch_key(good, layout) == (2, ((3,), (5, 2)))
    assert batch_key(dict(good, extra=np.zeros(1)), layout) == (2, ((3,), (5, 2)))
    for odd in (dict(good, a=np.zeros((2, 3), np.float64)), dict(good, a=np.zeros((2, 4), np.float32)),
                dict(good, a=np.zeros((2, 3, 1), np.float32)), dict(good, b=np.zeros((3, 5, 2), np.int64)),
                {"a": good["a"]}, {"a": np.zeros((0, 3), np.float32), "b": np.zeros((0, 5, 2), np.int64)},
                dict(good, a=[[0.0] * 3] * 2)):
        assert batch_key(odd, layout) is None, odd


def test_without_json_the_peer_says_what_it_did_when_it_stops():
    import signal
    import subprocess
    import sys

    peer = subprocess.Popen([sys.executable, "-m", "edgesplit.runtime.cli", "peer", "default", "--bind",
                             "tcp://127.0.0.1:*", "--max-batch", "4"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert "Ctrl-C to stop" in peer.stdout.readline()
        peer.send_signal(signal.SIGTERM)
        out, err = peer.communicate(timeout=60)
    finally:
        peer.kill()
    assert peer.returncode == 0, err
    assert out.startswith("edgesplit peer: stopped after ") and "served 0, probes 0, errors 0, refused none" in out
    assert "no pass held more than one request" in out
