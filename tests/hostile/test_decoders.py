"""Defects 1 and 2: one malformed message must not take down a peer, a daemon or ``edgesplit run``.

``json.loads`` raises RecursionError on deep nesting and ``float()`` raises OverflowError on an
integer literal past float range: both used to escape the wire decoders.
"""
import json
import subprocess
import sys
import time

import numpy as np
import zmq

from edgesplit.runtime.transport import wire
from edgesplit.runtime.transport.client import PeerClient
from support.daemon_process import ROOT, heldout
from support.hostile_peer import HUGE_NUMBER, HostilePeer

HUGE_INT = "1" + "0" * 400


def _request_header(bundle_hash, **changes):
    header = {"v": 1, "kind": "infer", "id": 5, "bundle": bundle_hash, "cut": 0, "thresholds": None,
              "use_exits": True, "deadline_s": 5.0, "tensors": [{"name": "x", "dtype": "float32", "shape": [1, 4]}]}
    header.update(changes)
    return json.dumps(header)


def _ask(sock, frames, timeout_ms=5000):
    sock.send_multipart(frames)
    assert sock.poll(timeout_ms), "the peer did not answer"
    reply = wire.decode_reply(sock.recv_multipart(copy=False))
    assert not isinstance(reply, wire.WireError), reply
    return reply


def test_deep_json_and_huge_numbers_are_bad_requests_and_the_peer_keeps_serving(make_peer, tiny_bundle):
    peer = make_peer(tiny_bundle.root)
    x = np.ones((1, 4), dtype=np.float32)
    hostile = [
        [b"[" * 15000],
        [b'{"v":1,"id":7,"kind":"infer","a":' + b"{" * 5000 + b"}" * 5000 + b"}"],
        [_request_header(tiny_bundle.hash, deadline_s=0).replace('"deadline_s": 0', '"deadline_s": ' + HUGE_INT)
         .encode(), x.tobytes()],
        [_request_header(tiny_bundle.hash, thresholds=[0]).replace('"thresholds": [0]', '"thresholds": [%s]' % HUGE_INT)
         .encode(), x.tobytes()],
        [_request_header(tiny_bundle.hash, id=0).replace('"id": 0', '"id": ' + HUGE_INT).encode(), x.tobytes()],
    ]
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(peer.endpoint)
    try:
        for frames in hostile:
            reply = _ask(sock, frames)
            assert reply.status == "bad_request", (frames[0][:80], reply)
    finally:
        sock.close()
    assert peer.proc.poll() is None, peer.stop()[2][-3000:]
    with PeerClient(peer.endpoint, tiny_bundle.hash) as client:
        assert client.offload(0, {"x": x}, 5.0).ok
    code, _, err = peer.stop()
    assert code == 0 and "Traceback" not in err, err[-3000:]


def test_decoders_return_a_refusal_for_every_exception():
    for frames in ([b"[" * 15000], [HUGE_NUMBER]):
        assert isinstance(wire.decode_request(frames), wire.WireError)
        assert isinstance(wire.decode_reply(frames), wire.WireError)


def test_daemon_survives_malformed_replies_and_answers_locally(make_daemon):
    with HostilePeer() as peer:
        daemon = make_daemon(extra_toml='[peer]\naddress = "%s"\n[action]\ncut = 1\n' % peer.endpoint).start()
        images = heldout(12)
        # Let the idle loop probe first: its malformed answers used to end the serving thread.
        waited = time.monotonic() + 20.0
        while peer.requests < 3 and time.monotonic() < waited:
            time.sleep(0.05)
        assert peer.requests >= 3
        with daemon.client(timeout_s=10.0) as client:
            answers = [client.submit(images[i:i + 1], deadline_ms=300) for i in range(12)]
            status = client.status()
        assert peer.requests >= 1  # the daemon did talk to it
    assert all(a.ok for a in answers), [(a.status, a.message) for a in answers]
    assert all(a.fallback or a.cut is None for a in answers)
    assert status["peer"]["alive"] is False and status["state"] == "serving"
    assert daemon.stop() == 0
    assert "Traceback" not in daemon.log.read_text()


def test_run_against_a_malformed_peer_finishes_every_task_locally(tmp_path):
    inputs = tmp_path / "x.npy"
    np.save(str(inputs), heldout(20))
    with HostilePeer() as peer:
        done = subprocess.run([sys.executable, "-m", "edgesplit.runtime.cli", "run", "default", "--peer", peer.endpoint,
                               "--inputs", str(inputs), "--cut", "1", "--deadline-ms", "300", "--json"],
                              cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        assert peer.requests >= 1
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    report = json.loads(done.stdout)
    assert report["completed"] == report["tasks"] == 20 and report["fallbacks"] >= 1
    assert b"Traceback" not in done.stderr
