"""The daemon's plain Unix stream endpoint (api.sock.plain) against a real daemon: ApiClient uses it by
default and gets the same answers as on the ZeroMQ socket; the socket is owner/group only; broken,
hostile and vanishing clients cost their own connection and nothing else."""
import json
import os
import signal
import socket
import stat
import struct
import threading
import time

import numpy as np

from edgesplit.runtime.api import ApiClient, ApiUnavailable, protocol
from support.daemon_process import heldout
from support.plain_api import HELLO, PlainConnection, message, request


def _plain(daemon) -> str:
    return str(daemon.socket) + ".plain"


def test_client_uses_the_plain_endpoint_and_answers_match_the_zeromq_socket(make_daemon):
    daemon = make_daemon().start()
    images = heldout(8)
    with daemon.client() as plain, daemon.client(transport="zmq") as zmq_client:
        assert plain.transport == "plain" and zmq_client.transport == "zmq"
        for i in range(8):
            a, b = plain.submit(images[i:i + 1], deadline_ms=500), zmq_client.submit(images[i:i + 1], deadline_ms=500)
            assert a.ok and b.ok, (a, b)
            assert (a.result, a.exit, a.cut) == (b.result, b.exit, b.cut)
            assert b.task_id != a.task_id
        answer = plain.submit(images[:1], label=3)
        assert plain.feedback(answer.task_id, label=4, rating=2.5).ok
        assert plain.feedback(10 ** 6, label=1).status == "unknown_task"
        bad = plain.submit(np.zeros((1, 3, 28, 28), np.float32))
        assert bad.status == "bad_request" and "shape" in bad.message, bad
        for wrong, says in (([[1, 2, 3]], "got list: convert it with np.asarray"),
                            ({"x": [1.0]}, "inputs 'x': each value must be a numpy array")):
            try:  # refused in the client, before a byte goes out: the connection stays usable
                plain.submit(wrong)
                raise AssertionError("submit(%r) was sent" % (wrong,))
            except TypeError as exc:
                assert says in str(exc), exc
        assert plain.ping()
        status = plain.status()
        assert status["tasks"]["ok"] == 17 and status["refused"]["bad_request"] == 1
    assert daemon.stop() == 0
    assert not os.path.exists(_plain(daemon))  # removed with the ZeroMQ socket


def test_the_plain_socket_is_owner_and_group_only(make_daemon):
    daemon = make_daemon().start()
    mode = stat.S_IMODE(os.stat(_plain(daemon)).st_mode)
    assert mode == 0o660, oct(mode)
    assert os.stat(_plain(daemon)).st_gid == os.stat(str(daemon.socket)).st_gid
    assert daemon.stop() == 0


def test_hostile_plain_clients_cannot_hang_the_daemon(make_daemon):
    daemon = make_daemon().start()
    image = heldout(1)
    path = _plain(daemon)
    submit = request("submit", 7, {"*": image})

    # Half a message, then gone; garbage (a bad frame count: refused, 1), then gone; one that never sends.
    for data in (submit[:len(submit) // 2], b"\xff" * 3, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"):
        conn = PlainConnection(path)
        assert conn.greeting == HELLO
        conn.send(data)
        conn.close()
    silent = PlainConnection(path)

    # Limits broken before any frame is read: the answer says which, then the connection closes.
    too_many_frames = struct.pack("<I", 10 ** 6)
    huge_header = struct.pack("<I", 1) + struct.pack("<Q", 2 ** 63)
    # A header that fits, then a tensor frame of 2**40 bytes.
    header = json.dumps({"v": 1, "op": "submit", "id": 9,
                         "tensors": [{"name": "*", "dtype": "float32", "shape": [2 ** 38]}]}).encode()
    huge_tensor = struct.pack("<I", 2) + struct.pack("<Q", len(header)) + struct.pack("<Q", 2 ** 40) + header
    expected = {too_many_frames: (None, "frames"), huge_header: (None, "header frame"),
                huge_tensor: (9, "api.max_input_mb")}
    for data, (request_id, words) in expected.items():
        conn = PlainConnection(path)
        conn.send(data)
        answer = conn.answer()
        assert answer["status"] == "bad_request" and words in answer["message"], answer
        assert answer["id"] == request_id
        assert conn.closed_by_daemon()
        conn.close()

    # Garbage inside well-formed framing is a bad_request and the connection stays usable.
    conn = PlainConnection(path)
    conn.send(message([b"not json"]) + message([b'{"v":1,"op":"launch","id":3}']) + submit)
    answers = conn.answers(3)
    assert [a["status"] for a in answers] == ["bad_request", "bad_request", "ok"], answers
    conn.close()

    with daemon.client() as client:
        assert client.transport == "plain"
        assert client.submit(image).ok
        assert client.status()["refused"]["bad_request"] == 6
    silent.close()
    assert daemon.stop() == 0
    log = daemon.log.read_text()
    assert "Traceback" not in log, log[-3000:]


def test_a_client_that_stalls_mid_message_loses_its_connection_and_nobody_waits(make_daemon):
    daemon = make_daemon().start()
    image = heldout(1)
    stalled = PlainConnection(_plain(daemon), timeout_s=30.0)
    data = request("submit", 1, {"*": image})
    stalled.send(data[:100])  # and never the rest
    with daemon.client() as client:
        for _ in range(5):
            assert client.submit(image).ok  # served meanwhile
    assert stalled.closed_by_daemon()  # within MESSAGE_TIMEOUT_S (10 s) of its first byte
    stalled.close()
    assert daemon.stop() == 0


def test_a_client_that_does_not_read_its_answers_is_dropped_and_nobody_waits(make_daemon):
    daemon = make_daemon().start()
    image = heldout(1)
    flood = PlainConnection(_plain(daemon))
    flood.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    ping = message([b'{"v":1,"op":"ping","id":1}'])
    flood.sock.settimeout(0.5)
    try:
        for _ in range(20000):  # never reads an answer: its socket buffers fill up
            flood.send(ping)
    except (OSError, socket.timeout):
        pass
    with daemon.client(timeout_s=20.0) as client:
        assert client.submit(image).ok
        assert client.status()["state"] == "serving"
    # The daemon closed the flood's connection instead of waiting to write: what it could write, then EOF.
    flood.sock.settimeout(10.0)
    closed = False
    try:
        while not closed:
            closed = flood.sock.recv(65536) == b""
    except ConnectionResetError:
        closed = True
    except socket.timeout:
        pass
    assert closed
    flood.close()
    assert daemon.stop() == 0


def test_pipelined_requests_on_one_connection_are_answered_in_order(make_daemon):
    daemon = make_daemon().start()
    images = heldout(6)
    conn = PlainConnection(_plain(daemon))
    conn.send(b"".join(request("submit", 100 + i, {"*": images[i:i + 1]}, deadline_ms=5000) for i in range(6)))
    answers = conn.answers(6)
    assert sorted(a["id"] for a in answers) == list(range(100, 106))
    assert all(a["status"] == "ok" for a in answers), answers
    conn.close()
    assert daemon.stop() == 0


def test_a_flooding_plain_client_does_not_keep_another_out(make_daemon):
    daemon = make_daemon(queue_size=8, extra_toml="[debug]\nallow_freeze = true\n").start()
    image = heldout(1)
    daemon.signal(signal.SIGUSR2)  # nothing runs: the flood fills the queue
    time.sleep(0.5)
    flooder = PlainConnection(_plain(daemon))
    flooder.send(b"".join(request("submit", i, {"*": image}, deadline_ms=60000) for i in range(20)))
    refused = flooder.answers(12)  # 8 queued, the other 12 refused at once
    assert {a["status"] for a in refused} == {"queue_full"}, refused
    with daemon.client(timeout_s=2.0, transport="zmq") as polite:
        polite._sock.send_multipart(protocol.encode_request("submit", 1, {"deadline_ms": 60000}, {"*": image}),
                                    copy=False)
        # Room for the polite client: the flooder's newest queued request is pushed out and told so.
        pushed = flooder.answer()
        assert pushed["status"] == "queue_full" and "share" in pushed["message"], pushed
        with daemon.client(timeout_s=2.0) as observer:
            assert observer.status()["queue"]["length"] == 8  # status answers while the loop is frozen
    flooder.close()
    daemon.kill()


def test_at_the_connection_limit_clients_fall_back_to_zeromq(make_daemon):
    from edgesplit.runtime.api.plain_endpoint import MAX_CONNECTIONS

    daemon = make_daemon().start()
    held = [PlainConnection(_plain(daemon)) for _ in range(MAX_CONNECTIONS)]
    try:
        with daemon.client() as client:
            assert client.transport == "zmq"
            assert client.submit(heldout(1)).ok
        try:
            ApiClient(str(daemon.socket), transport="plain", timeout_s=2.0)
            raise AssertionError("a forced plain client was let in beyond the limit")
        except ApiUnavailable as exc:
            assert "plain API endpoint" in str(exc)
    finally:
        for conn in held:
            conn.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with daemon.client() as client:
            if client.transport == "plain":
                break
        time.sleep(0.1)
    assert client.transport == "plain"  # room again once they left
    assert daemon.stop() == 0


def test_a_client_outlives_a_daemon_restart(make_daemon):
    daemon = make_daemon().start()
    image = heldout(1)
    with daemon.client(timeout_s=10.0) as client:
        assert client.submit(image).ok
        assert daemon.stop() == 0
        daemon.start()
        # The old connection is dead: the client reconnects and sends again (the request never arrived).
        answer = client.submit(image)
        assert answer.ok and answer.task_id == 1, answer
    assert daemon.stop() == 0


def test_a_submit_in_flight_when_the_daemon_stops_is_answered(make_daemon):
    daemon = make_daemon().start()
    images = heldout(50)
    answers, gone = [], []

    def submit_all():
        with daemon.client(timeout_s=20.0) as client:
            for i in range(50):
                try:
                    answers.append(client.submit(images[i:i + 1]).status)
                except ApiUnavailable as exc:  # the daemon gone: fine after its answers, not instead of one
                    gone.append(str(exc))
                    return

    thread = threading.Thread(target=submit_all)
    thread.start()
    time.sleep(0.2)
    assert daemon.stop() == 0
    thread.join(30)
    assert not thread.is_alive(), "the client still waits 30 s after the daemon stopped"
    assert "ok" in answers and set(answers) <= {"ok", "draining"}, answers
    # A request the daemon dropped would end in the client's own time limit; a closed socket ends it at once.
    assert not any("no answer from the edgesplit daemon" in text for text in gone), gone


def test_submit_many_answers_every_item_in_order_on_both_endpoints(make_daemon):
    daemon = make_daemon().start()
    images = heldout(10)
    labels = list(range(10))
    with daemon.client() as client:
        one_by_one = [client.submit(images[i:i + 1]) for i in range(10)]
        for transport in ("auto", "zmq"):
            with daemon.client(transport=transport) as batcher:
                answers = batcher.submit_many(images, labels=labels, window=3, deadline_ms=5000)
                assert [a.status for a in answers] == ["ok"] * 10, answers
                assert [a.result for a in answers] == [a.result for a in one_by_one]
                assert len({a.task_id for a in answers}) == 10
        mixed = client.submit_many([images[:1], np.zeros((1, 2, 28, 28), np.float32), {"*": images[1:2]}])
        assert [a.status for a in mixed] == ["ok", "bad_request", "ok"], mixed
        assert client.status()["tasks"]["ok"] == 32
    assert daemon.stop() == 0


def test_submit_many_holds_at_most_its_window_in_the_queue(make_daemon):
    daemon = make_daemon(queue_size=16, extra_toml="[debug]\nallow_freeze = true\n").start()
    images = heldout(12)
    daemon.signal(signal.SIGUSR2)  # nothing runs: what the batch sends stays queued
    time.sleep(0.5)
    outcome = []

    def batch():
        with daemon.client(timeout_s=30.0) as client:
            try:
                outcome.append(client.submit_many(images, window=4, deadline_ms=60000))
            except ApiUnavailable as exc:
                outcome.append(exc)

    thread = threading.Thread(target=batch)
    thread.start()
    with daemon.client(timeout_s=5.0) as observer:
        deadline = time.monotonic() + 10
        while observer.status()["queue"]["length"] < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # time enough to send more, were it allowed to
        assert observer.status()["queue"]["length"] == 4
    daemon.kill()
    thread.join(40)
    assert len(outcome) == 1 and isinstance(outcome[0], ApiUnavailable), outcome


def test_submit_command_sends_every_row_and_refuses_labels_that_do_not_fit(make_daemon, tmp_path):
    import subprocess
    import sys

    daemon = make_daemon().start()
    images = heldout(20)
    np.save(str(tmp_path / "x.npy"), images)
    np.save(str(tmp_path / "y.npy"), np.arange(20))
    np.save(str(tmp_path / "short.npy"), np.arange(19))
    cli = [sys.executable, "-m", "edgesplit.runtime.cli", "submit", "--socket", str(daemon.socket),
           "--inputs", str(tmp_path / "x.npy"), "--json"]
    done = subprocess.run(cli + ["--labels", str(tmp_path / "y.npy")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    assert [a["status"] for a in answers] == ["ok"] * 20
    with daemon.client() as client:
        assert [a["result"] for a in answers] == [client.submit(images[i:i + 1]).result for i in range(20)]
    # the text output ends with the accuracy over the labelled rows (the answers' classes against the labels)
    text = subprocess.run(cli[:-1] + ["--labels", str(tmp_path / "y.npy")], capture_output=True, text=True,
                          timeout=120)
    right = sum(a["result"] == label for a, label in zip(answers, range(20)))
    assert text.returncode == 0 and text.stdout.splitlines()[-1] == "accuracy: %d of 20 answered rows right (%.1f%%)" % (
        right, 100.0 * right / 20), text.stdout[-300:]
    # --period-ms: one row every period, each after the previous answer (a sensor's pace, not a burst); the sleep
    # between arrivals makes the run last at least (rows - 1) periods, whatever the machine
    import time as clock

    began = clock.monotonic()
    paced = subprocess.run(cli + ["--rows", "5", "--period-ms", "150"], capture_output=True, text=True, timeout=120)
    assert paced.returncode == 0, paced.stderr
    assert [json.loads(line)["status"] for line in paced.stdout.splitlines()] == ["ok"] * 5
    assert clock.monotonic() - began >= 4 * 0.150
    refused = subprocess.run(cli + ["--labels", str(tmp_path / "short.npy")], capture_output=True, text=True,
                             timeout=120)
    assert refused.returncode != 0 and "--labels" in refused.stderr and "19 labels for 20 rows" in refused.stderr
    assert daemon.stop() == 0


def test_the_daemon_threads_carry_their_names_for_top(make_daemon):
    import glob

    daemon = make_daemon().start()
    with daemon.client() as client:
        assert client.submit(heldout(1)).ok
        names = set()
        for task in glob.glob("/proc/%d/task/*" % daemon.process.pid):
            with open(task + "/comm") as comm:
                names.add(comm.read().strip())
        children = set()
        for child in open("/proc/%d/task/%d/children" % (daemon.process.pid, daemon.process.pid)).read().split():
            with open("/proc/%s/comm" % child) as comm:
                children.add(comm.read().strip())
    assert {"es-api", "es-api-accept", "es-api-conn", "es-serving", "trace-flush"} <= names, names
    assert "es-trace-writer" in children, children  # the trace writer is a process of its own (docs/traces.md)
    with open("/proc/%d/comm" % daemon.process.pid) as comm:
        assert comm.read().strip() not in names - {"python"}  # the process keeps its own name
    assert daemon.stop() == 0
