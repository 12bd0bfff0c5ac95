"""The peer pool on a real local Ray cluster: a head node, Ray Serve replicas in their own worker
processes, two ``edgesplit pool`` front ends, devices as ``edgesplit run`` processes and PeerClients.

One cluster and one pair of front ends for the whole module (Ray takes tens of seconds to start here).
"""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from support.ray_cluster import RayHead, delete_application, ray_installed, start_front_end, stopped_line

if not ray_installed():
    pytest.skip("Ray Serve is not installed: pip install -e '.[pool]' to run the pool tests", allow_module_level=True)

from edgesplit.runtime.bundle.store import load_bundle  # noqa: E402
from edgesplit.runtime.default_bundle import default_bundle_path, load_heldout  # noqa: E402
from edgesplit.runtime.executor.executor import Executor  # noqa: E402
from edgesplit.runtime.transport import wire  # noqa: E402
from edgesplit.runtime.transport.client import PeerClient  # noqa: E402
from edgesplit.runtime.transport.failover import PeerFailover  # noqa: E402

EDGESPLIT = [sys.executable, "-m", "edgesplit.runtime.cli"]
CUT = 2
TASKS = 200


@pytest.fixture(scope="module")
def cluster():
    head = RayHead(num_cpus=4)
    yield head
    head.stop()


@pytest.fixture(scope="module")
def front_ends(cluster):
    first = start_front_end("default", cluster.address, ["--replicas", "2"])
    second = None
    try:
        second = start_front_end("default", cluster.address, ["--replicas", "1"])
        yield first, second
    finally:
        for front in (first, second):
            if front is not None:
                front.stop(signal.SIGKILL)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    images, labels = load_heldout()
    base = tmp_path_factory.mktemp("pool_inputs")
    x, y = base / "x.npy", base / "y.npy"
    np.save(str(x), images[:400])
    np.save(str(y), labels[:400])
    return str(x), str(y), images


def _run_device(peers, x, y, db, limit, extra=()):
    """``edgesplit run`` at cut 2 with exit thresholds 0 (every task reaches the cut and is offloaded). The
    offload deadline is generous: a Ray Serve call on a loaded 2-core machine takes tens of milliseconds,
    so tasks arrive every 100 ms (a device that cannot keep up falls behind and every late task falls back)."""
    return subprocess.Popen(EDGESPLIT + ["run", "default", "--peer", ",".join(peers), "--inputs", x, "--labels", y,
                                         "--cut", str(CUT), "--thresholds", "0,0", "--limit", str(limit),
                                         "--deadline-ms", "1000", "--traces", str(db), "--json"] + list(extra),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _rows(db):
    with sqlite3.connect(str(db)) as conn:
        return conn.execute("SELECT task_id, fallback, cut, result FROM tasks ORDER BY task_id").fetchall()


def test_two_front_ends_share_the_replicas_and_answer_like_the_peer(front_ends, inputs):
    first, second = front_ends
    # The second front end found the application the first deployed (its --replicas 1 changed nothing).
    assert first.ready["application"] == second.ready["application"]
    assert second.ready["replicas"] == 2
    assert "--replicas 1 not applied" in second.stderr_text()  # said, not silently dropped
    assert "not applied" not in first.stderr_text()
    bundle = load_bundle(default_bundle_path())
    executor = Executor(bundle)
    images = inputs[2][:8]
    local = executor.run(images, use_exits=False, stop_at_cut=CUT)
    expected = executor.run_from(CUT, local.live, use_exits=False)
    for front in (first, second):
        with PeerClient(front.endpoint, bundle.wire_hash) as client:
            outcome = client.offload(CUT, local.live, deadline_s=20.0, use_exits=False)
            assert outcome.ok, outcome.message
            assert outcome.exit_id == expected.exit_id
            np.testing.assert_allclose(outcome.output, expected.output, rtol=1e-5, atol=1e-6)
            assert client.probe(timeout_s=5.0).ok
    # Refusals are the peer's: another bundle, and tensors the bundle does not take.
    with PeerClient(first.endpoint, "ab" * 32) as stranger:
        refused = stranger.offload(CUT, local.live, deadline_s=5.0)
        assert refused.peer_status == "bundle_mismatch"
    with PeerClient(first.endpoint, bundle.wire_hash) as client:
        wrong = {name: np.zeros((1, 3), np.float32) for name in local.live}
        assert client.offload(CUT, wrong, deadline_s=10.0).peer_status == "bad_request"


def test_a_front_end_whose_replicas_are_gone_refuses_probes_and_devices_use_the_next(cluster, front_ends):
    """A front end on an application of its own; the application is deleted under it. Its probes are then
    answered 'overloaded' (what marks a peer down), a device listing it first sends its offloads to the
    healthy front end, and once the application is deployed again the front end answers probes 'ok'."""
    first, _ = front_ends
    bundle = load_bundle(default_bundle_path())
    live = Executor(bundle).run(load_heldout()[0][:4], use_exits=False, stop_at_cut=CUT).live
    own = ["--application", "edgesplit-health-test", "--replicas", "1"]
    sick = start_front_end("default", cluster.address, own)
    try:
        with PeerClient(sick.endpoint, bundle.wire_hash) as client:
            assert client.probe(timeout_s=10.0).ok
            delete_application(cluster.address, "edgesplit-health-test")
            assert _probe_until(client, "overloaded")[-1] == "overloaded", sick.stderr_text()[-2000:]
            with PeerFailover.connect([sick.endpoint, first.endpoint], bundle.wire_hash) as device:
                outcomes = [device.offload(CUT, live, deadline_s=20.0, use_exits=False) for _ in range(4)]
                assert outcomes[0].peer_status == "overloaded"
                assert all(o.ok for o in outcomes[1:]), [o.message for o in outcomes]
                assert device.active.address == first.endpoint
            # Deployed again (by another front end): the first front end serves again by itself.
            again = start_front_end("default", cluster.address, own)
            try:
                assert _probe_until(client, "ok")[-1] == "ok", sick.stderr_text()[-2000:]
                assert client.offload(CUT, live, deadline_s=20.0, use_exits=False).ok
            finally:
                again.stop(signal.SIGKILL)
    finally:
        stats = stopped_line(sick)
        delete_application(cluster.address, "edgesplit-health-test")
    assert stats is not None and stats["unavailable"] >= 2 and stats["served"] >= 1


def _probe_until(client, status, within_s=120.0):
    """Probe until the front end answers ``status`` (the statuses seen; the last is the wanted one unless time ran out)."""
    seen = []
    end = time.monotonic() + within_s
    while time.monotonic() < end:
        seen.append(client.probe(timeout_s=5.0).peer_status)
        if seen[-1] == status:
            break
        time.sleep(0.5)
    return seen


def test_a_replica_killed_mid_load_loses_no_task(front_ends, inputs, tmp_path):
    first, _ = front_ends
    # Kill the replica the first front end saw, a few seconds into the device's stream.
    report, rows, _ = _stream_through(front_ends, inputs, tmp_path / "replica_kill.db",
                                      lambda: os.kill(first.ready["replica_pid"], signal.SIGKILL))
    assert [r[0] for r in rows] == list(range(TASKS)) and all(r[3] is not None for r in rows)
    # Every task was answered, by the pool or (a counted fallback) on the device, and the pool kept serving.
    answered_by_pool = [r for r in rows if r[2] == CUT and not r[1]]
    assert len(answered_by_pool) + report["fallbacks"] == TASKS
    # The pool kept serving after the kill (how many fall back meanwhile depends on this machine's load).
    pattern = "".join("F" if r[1] else "." for r in rows)
    assert sum(1 for r in rows[-100:] if not r[1]) >= 10, (pattern, first.stderr_text()[-2000:])


def _stream_through(front_ends, inputs, db, meanwhile):
    """A device streams TASKS tasks to both front ends; ``meanwhile()`` runs a few seconds in. Every task
    completes; returns the device's report, its task rows and its stderr."""
    x, y, _ = inputs
    run = _run_device([front.endpoint for front in front_ends], x, y, db, TASKS, ["--period-ms", "100"])
    _wait_into_stream(run, db)
    meanwhile()
    out, err = run.communicate(timeout=300)
    assert run.returncode == 0, err
    report = json.loads(out)
    assert report["tasks"] == report["completed"] == TASKS
    return report, _rows(db), err


def _wait_into_stream(run, db, seconds=3.0):
    """Until the device has logged its first tasks, then ``seconds`` more (the rest of its 20 s stream
    leaves the pool time to recover and show it)."""
    end = time.monotonic() + 120
    while not _rows_or_empty(db) and run.poll() is None and time.monotonic() < end:
        time.sleep(0.05)
    time.sleep(seconds)


def _rows_or_empty(db):
    try:
        return _rows(db)
    except sqlite3.Error:
        return []


def test_a_front_end_killed_mid_stream_devices_fail_over(front_ends, inputs, tmp_path):
    first, second = front_ends
    _, rows, err = _stream_through(front_ends, inputs, tmp_path / "front_end_kill.db",
                                   lambda: first.stop(signal.SIGKILL))
    # After the first front end died, the second answered the rest (at most a few timed out into fallbacks).
    pattern = "".join("F" if r[1] else "." for r in rows)
    assert sum(1 for r in rows[-100:] if r[2] == CUT and not r[1]) >= 10, (pattern, err[-3000:])
    stats = stopped_line(second)
    assert stats is not None and stats["served"] > 0 and stats["errors"] == 0


def test_pool_refuses_a_bad_option_with_a_clear_message():
    proc = subprocess.run(EDGESPLIT + ["pool", "default", "--replicas", "0"], stderr=subprocess.PIPE, text=True)
    assert proc.returncode == 1 and "--replicas must be at least 1" in proc.stderr
    proc = subprocess.run(EDGESPLIT + ["pool", "default", "--bind", "tcp://0.0.0.0:5599"],
                          stderr=subprocess.PIPE, text=True)
    assert proc.returncode == 1 and "--insecure" in proc.stderr
    assert wire.PROTOCOL_VERSION == 1


def test_a_cluster_address_where_nothing_listens_is_one_clear_line_at_once():
    import socket

    with socket.socket() as probe:  # a port nothing listens on: bound, never listening, then closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    proc = subprocess.run(EDGESPLIT + ["pool", "default", "--ray-address", "127.0.0.1:%d" % port,
                                       "--bind", "tcp://127.0.0.1:*"],
                          stderr=subprocess.PIPE, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "cannot join the Ray cluster at 127.0.0.1:%d: nothing answers there" % port in proc.stderr
    assert "Traceback" not in proc.stderr and time.monotonic() - started < 60  # not Ray's minutes of retrying
