"""Defect 8, the smaller items: plain connections to a secure peer leave a log line; an empty
allowed-keys folder warns; untrusted text cannot forge log lines; an empty batch is ``bad_request``."""
import json
import time

import numpy as np
import pytest
import zmq

from edgesplit.runtime.security.keys import generate_keypair
from edgesplit.runtime.transport import wire
from edgesplit.runtime.transport.client import PeerClient
from support.daemon_process import heldout


@pytest.mark.skipif(not zmq.has("curve"), reason="libzmq without CURVE")
def test_plain_connection_to_a_secure_peer_is_logged_and_empty_allow_list_warns(make_peer, tiny_bundle, tmp_path):
    generate_keypair(tmp_path, "peer")
    (tmp_path / "devices").mkdir()
    peer = make_peer(tiny_bundle.root, extra=["--secret-key", str(tmp_path / "peer.key_secret"),
                                              "--allowed-keys", str(tmp_path / "devices")])
    plain = zmq.Context.instance().socket(zmq.DEALER)
    plain.setsockopt(zmq.LINGER, 0)
    plain.connect(peer.endpoint)
    plain.send_multipart([b"{}"])
    time.sleep(1.0)  # the peer reads its socket monitor on its next pass (every 100 ms at most)
    plain.close()
    code, _, err = peer.stop()
    assert code == 0
    assert "holds no device keys" in err, err
    assert "failed the CurveZMQ handshake" in err, err
    assert '"handshake_failures": 0' not in err


def test_a_newline_in_a_header_field_cannot_forge_a_log_line(make_peer, tiny_bundle):
    peer = make_peer(tiny_bundle.root)
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(peer.endpoint)
    header = {"v": 1, "kind": "infer", "id": 1, "bundle": "abc\nFORGED: peer compromised", "cut": 0,
              "thresholds": None, "use_exits": True, "deadline_s": 5.0,
              "tensors": [{"name": "x\nFORGED: name", "dtype": "float32", "shape": [1, 4]}]}
    for changes in ({}, {"bundle": tiny_bundle.hash}, {"kind": "infer\nFORGED: kind"}):
        sock.send_multipart([json.dumps(dict(header, **changes)).encode(), np.ones((1, 4), np.float32).tobytes()])
        assert sock.poll(5000)
        assert not isinstance(wire.decode_reply(sock.recv_multipart(copy=False)), wire.WireError)
    sock.close()
    code, _, err = peer.stop()
    assert code == 0 and "abc" in err  # the refusal was logged ...
    assert not any(line.startswith("FORGED") for line in err.splitlines()), err  # ... on one line


def test_an_empty_batch_is_a_bad_request(make_peer, tiny_bundle, make_daemon):
    peer = make_peer(tiny_bundle.root)
    with PeerClient(peer.endpoint, tiny_bundle.hash) as client:
        outcome = client.offload(0, {"x": np.zeros((0, 4), np.float32)}, 5.0)
    assert outcome.peer_status == "bad_request" and "empty" in outcome.message, outcome
    daemon = make_daemon().start()
    with daemon.client() as client:
        answer = client.submit(np.zeros((0,) + heldout(1).shape[1:], np.float32))
        assert answer.status == "bad_request" and "empty" in answer.message, answer
    assert daemon.stop() == 0
