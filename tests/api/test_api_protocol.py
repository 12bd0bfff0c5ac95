"""The local API against a real daemon: malformed messages are answered (or dropped), never fatal;
the socket is owner/group only; status carries the figures the issue names."""
import os
import stat
import sys

import numpy as np
import zmq
from support.daemon_process import DaemonProcess, heldout  # noqa: E402

from edgesplit.runtime.api import protocol  # noqa: E402


def _raw(daemon, frames):
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect("ipc://%s" % daemon.socket)
    sock.send_multipart(frames)
    reply = sock.recv_multipart() if sock.poll(5000) else None
    sock.close()
    return None if reply is None else protocol.decode_header(reply[0])


def test_garbage_is_answered_and_the_daemon_keeps_serving(tmp_path):
    daemon = DaemonProcess(tmp_path).start()
    try:
        mode = stat.S_IMODE(os.stat(str(daemon.socket)).st_mode)
        assert mode & 0o007 == 0, oct(mode)  # nobody but owner and group
        for frames in ([b"not json"], [b"[1, 2]"], [b'{"v": 9, "id": 1}'], [b'{"v": 1, "id": "x"}'],
                       [b'{"v": 1, "id": 2, "op": "launch"}'],
                       [b'{"v": 1, "id": 3, "op": "submit", "tensors": [{"name": "*", "dtype": "float32", '
                        b'"shape": [1, 1, 28, 28]}]}', b"short"],
                       [b'{"v": 1, "id": 4, "op": "submit", "tensors": [{"name": "*", "dtype": "object", '
                        b'"shape": [1]}]}', b"x"],
                       [b'{"v": 1, "id": 5, "op": "feedback", "task_id": -1, "label": 1}'],
                       [b'{"v": 1, "id": 7, "op": "feedback", "task_id": 1}'],
                       [b'{"v": 1, "id": 8, "op": "feedback", "task_id": 1, "rating": NaN}'],
                       [b'{"v": 1, "id": 9, "op": "feedback", "task_id": 1, "rating": [1]}'],
                       [b'{"v": 1, "id": 6, "op": "submit", "deadline_ms": "soon", "tensors": []}']):
            reply = _raw(daemon, frames)
            assert reply is not None and reply["status"] == "bad_request", (frames, reply)
        with daemon.client() as client:
            assert client.submit(heldout(1)).ok
            status = client.status()
        for key in ("queue", "current_action", "peer", "tasks", "policy", "uptime_s", "refused"):
            assert key in status
        assert status["refused"]["bad_request"] == 12 and status["tasks"]["ok"] == 1
        assert status["policy"]["policy_id"] == "static:local-only"
    finally:
        assert daemon.stop() == 0
        daemon.cleanup()


def test_a_second_daemon_cannot_take_a_running_daemons_socket(tmp_path):
    import subprocess

    (tmp_path / "a").mkdir()
    first = DaemonProcess(tmp_path / "a").start()
    other = tmp_path / "second.toml"
    other.write_text(first.config.read_text().replace(str(first.traces), str(tmp_path / "second.db")))
    try:
        proc = subprocess.run([sys.executable, "-m", "edgesplit.runtime.cli", "serve", "--config", str(other)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=60,
                              env=first.env)
        assert proc.returncode == 1 and "in use by another edgesplit daemon" in proc.stderr
        with first.client() as client:
            assert client.submit(np.zeros((1, 1, 28, 28), dtype=np.float32)).ok
    finally:
        assert first.stop() == 0
        first.cleanup()


def test_tensor_headers_get_the_wire_checks_and_a_refusal_that_names_the_field(tmp_path):
    daemon = DaemonProcess(tmp_path).start()
    try:
        huge = _raw(daemon, [b'{"v": 1, "id": 1, "op": "submit", "tensors": [{"name": "*", "dtype": "float32", '
                             b'"shape": [0, 1180591620717411303424]}]}', b""])  # [0, 2**70]: zero bytes
        assert huge["status"] == "bad_request" and "tensors[0].shape" in huge["message"], huge
        twice = _raw(daemon, [b'{"v": 1, "id": 2, "op": "submit", "tensors": [{"name": "x", "dtype": "uint8", '
                              b'"shape": [1]}, {"name": "x", "dtype": "uint8", "shape": [1]}]}', b"a", b"b"])
        assert twice["status"] == "bad_request" and "tensors[1].name" in twice["message"], twice
        with daemon.client() as client:
            assert client.submit(heldout(1)).ok
            status = client.status()
        assert status["refused"]["bad_request"] == 2 and status["tasks"]["errors"] == 0
    finally:
        assert daemon.stop() == 0
        daemon.cleanup()


def test_decode_tensors_refuses_what_the_wire_refuses():
    import pytest

    header = {"tensors": [{"name": "x", "dtype": "float32", "shape": [0, 2 ** 70]}]}
    with pytest.raises(protocol.BadMessage, match=r"tensors\[0\]\.shape"):
        protocol.decode_tensors(header, [b""], max_bytes=1 << 20)
    header = {"tensors": [{"name": "x", "dtype": "float32", "shape": [2, 2]}]}
    with pytest.raises(protocol.BadMessage, match=r"api.max_input_mb"):
        protocol.decode_tensors(header, [b"\0" * 16], max_bytes=8)
    arrays = protocol.decode_tensors(header, [np.arange(4, dtype=np.float32).tobytes()], max_bytes=16)
    assert arrays["x"].tolist() == [[0.0, 1.0], [2.0, 3.0]]
