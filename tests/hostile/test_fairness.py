"""Defect 7: three flooding devices used to keep a fourth out (10 of 10 answered ``overloaded``); idle
TCP connections could exhaust the peer's file descriptors. Now each device has a fair share of the
queue and is served in turn, and the systemd units set a file-descriptor budget."""
import configparser
import json
import threading

import numpy as np
import zmq

from edgesplit.runtime.bundle.store import load_bundle
from edgesplit.runtime.default_bundle import default_bundle_path
from edgesplit.runtime.fair_queue import FairQueue
from edgesplit.runtime.transport import wire
from edgesplit.runtime.transport.client import PeerClient
from support.daemon_process import ROOT, heldout


def _flood(endpoint, bundle_hash, image, stop, counts):
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    request_id = 0
    while not stop.is_set():
        request_id += 1
        frames = wire.encode_request(request_id, "infer", bundle_hash, 0, 10.0, {"image": image})
        try:
            sock.send_multipart(frames, flags=zmq.NOBLOCK, copy=False)
        except zmq.Again:
            pass
        while sock.poll(0 if request_id % 8 else 1):
            reply = wire.decode_reply(sock.recv_multipart(copy=False))
            status = getattr(reply, "status", "malformed")
            counts[status] = counts.get(status, 0) + 1
    sock.close()


def test_three_flooding_devices_do_not_keep_a_fourth_out(make_peer):
    bundle = load_bundle(default_bundle_path())
    peer = make_peer(default_bundle_path(), extra=["--max-queue", "8"])
    image = heldout(1)
    stop = threading.Event()
    flood_counts = [{}, {}, {}]
    floods = [threading.Thread(target=_flood, args=(peer.endpoint, bundle.wire_hash, image, stop, counts))
              for counts in flood_counts]
    for thread in floods:
        thread.start()
    try:
        # The flood is on when the queue is full: the flooders get 'overloaded' answers.
        with PeerClient(peer.endpoint, bundle.wire_hash) as client:
            while sum(c.get("overloaded", 0) for c in flood_counts) < 50:
                client.offload(0, {"image": image}, 0.01)
            outcomes = []
            for _ in range(10):
                client.peer_alive = True  # ask every time, as a device would after its probe succeeds
                outcomes.append(client.offload(0, {"image": image}, 10.0))
    finally:
        stop.set()
        for thread in floods:
            thread.join(10)
    assert [o.peer_status for o in outcomes] == ["ok"] * 10, [(o.peer_status, o.message) for o in outcomes]
    assert all(c.get("ok", 0) > 0 for c in flood_counts), flood_counts  # the flooders are served too
    assert peer.stop()[0] == 0


def test_fair_queue_shares_room_and_serves_devices_in_turn():
    queue = FairQueue(capacity=6, capacity_bytes=10 ** 9)
    assert all(queue.offer("a", "a%d" % i, 1) == (True, []) for i in range(6))
    assert queue.offer("b", "b0", 1) == (True, ["a5"])  # the newcomer pushes out the flooder's newest
    assert queue.offer("b", "b1", 1) == (True, ["a4"])
    assert queue.offer("b", "b2", 1) == (True, ["a3"])
    assert queue.offer("b", "b3", 1) == (False, [])  # b holds its share (6 // 2)
    assert queue.offer("c", "c0", 1) == (True, ["a2"])
    assert [queue.pop() for _ in range(6)] == ["a0", "b0", "c0", "a1", "b1", "b2"]
    assert queue.pop() is None and len(queue) == 0 and queue.nbytes == 0


def test_fair_queue_byte_budget_pushes_out_the_biggest_holder():
    queue = FairQueue(capacity=100, capacity_bytes=100)
    assert queue.offer("a", "a0", 60)[0] and queue.offer("a", "a1", 40)[0]
    assert queue.offer("b", "b0", 30) == (True, ["a1"])
    assert queue.offer("b", "b1", 200) == (False, [])  # more than the whole budget: refused, nothing lost
    assert len(queue) == 2 and queue.nbytes == 90


def test_systemd_units_set_a_file_descriptor_budget():
    for unit in ("edgesplit.service", "edgesplit-peer.service"):
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.optionxform = str
        parser.read(str(ROOT / "systemd" / unit))
        limit = parser.get("Service", "LimitNOFILE", fallback=None)
        assert limit is not None and int(limit.split(":")[0]) >= 1024, (unit, limit)


def _open_fds(pid):
    import os

    return len(os.listdir("/proc/%d/fd" % pid))


def test_idle_tcp_connections_are_closed_and_a_device_still_gets_in(make_peer, tiny_bundle):
    import socket
    import time

    peer = make_peer(tiny_bundle.root)
    host, port = peer.endpoint[len("tcp://"):].rsplit(":", 1)
    baseline = _open_fds(peer.pid)
    idle = []
    for _ in range(300):  # never send the ZMTP greeting: each holds a descriptor in the peer
        conn = socket.create_connection((host, int(port)))
        idle.append(conn)
    x = np.ones((1, 4), np.float32)
    with PeerClient(peer.endpoint, tiny_bundle.hash) as client:
        assert client.offload(0, {"x": x}, 10.0).ok
    deadline = time.monotonic() + 20.0
    while _open_fds(peer.pid) > baseline + 10 and time.monotonic() < deadline:
        time.sleep(0.2)
    closed = _open_fds(peer.pid)
    for conn in idle:
        conn.close()
    assert closed <= baseline + 10, (baseline, closed)
    assert peer.stop()[0] == 0


def test_a_flooding_api_client_does_not_keep_another_out_of_the_daemon(make_daemon):
    from edgesplit.runtime.api import protocol

    daemon = make_daemon(queue_size=8).start()
    image = heldout(1)
    stop = threading.Event()
    flood_answers = {}

    def flood():
        with daemon.client(transport="zmq") as flooder:
            sock = flooder._sock
            sent = 0
            while not stop.is_set():
                for _ in range(50):
                    sock.send_multipart(protocol.encode_request("submit", sent, {"deadline_ms": 60000}, {"*": image}),
                                        copy=False)
                    sent += 1
                while sock.poll(20):
                    status = json.loads(sock.recv_multipart()[-1])["status"]
                    flood_answers[status] = flood_answers.get(status, 0) + 1

    thread = threading.Thread(target=flood)
    thread.start()
    try:
        with daemon.client(timeout_s=60.0) as client:
            while flood_answers.get("queue_full", 0) < 50:  # the queue is full of the flood's requests
                client.ping()
            answers = [client.submit(image, deadline_ms=60000) for _ in range(10)]
    finally:
        stop.set()
        thread.join(30)
    assert [a.status for a in answers] == ["ok"] * 10, [(a.status, a.message) for a in answers]
    assert flood_answers.get("ok", 0) > 0
    assert daemon.stop() == 0
