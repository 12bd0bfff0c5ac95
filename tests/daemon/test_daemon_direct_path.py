"""The daemon's direct path: short tasks with nothing queued run on the API thread (no thread hops),
every answer's trace row is there for feedback sent the moment the answer arrives, and a busy or
frozen serving loop sends submits through the queue as before."""
import signal
import sqlite3
import time

from support.daemon_process import heldout


def test_short_tasks_take_the_direct_path_and_feedback_right_after_each_answer_lands(make_daemon):
    daemon = make_daemon().start()
    images = heldout(120)
    with daemon.client() as client:
        answers = []
        for i in range(120):
            answer = client.submit(images[i:i + 1])
            assert answer.ok, answer
            # No pause: the row is written while the answer travels, and feedback waits for it.
            assert client.feedback(answer.task_id, label=i % 10).ok
            answers.append(answer)
        tasks = client.status()["tasks"]
    assert tasks["ok"] == 120 and tasks["errors"] == 0
    assert 0 < tasks["direct"] <= 120  # the first tasks go through the serving thread, later ones direct
    assert len({a.task_id for a in answers}) == 120
    assert daemon.stop() == 0
    with sqlite3.connect(str(daemon.traces)) as db:
        labels = dict(db.execute("SELECT task_id, label FROM tasks"))
        transitions = db.execute("SELECT count(*) FROM transitions").fetchone()[0]
    assert {a.task_id: labels.get(a.task_id) for a in answers} == {a.task_id: i % 10 for i, a in enumerate(answers)}
    assert transitions >= 119  # one per closed interval, whichever thread ran the task


def test_a_frozen_serving_loop_turns_the_direct_path_off(make_daemon):
    daemon = make_daemon(queue_size=2, extra_toml="[debug]\nallow_freeze = true\n").start()
    images = heldout(40)
    with daemon.client(timeout_s=2.0) as client:
        for i in range(40):
            assert client.submit(images[i:i + 1]).ok
        assert client.status()["tasks"]["direct"] > 0
        daemon.signal(signal.SIGUSR2)
        time.sleep(0.5)
        # Now nothing runs: submits wait in the queue (answered only by a live serving loop) until it is full.
        waiting = [daemon.client(transport="zmq") for _ in range(2)]
        for other in waiting:
            other._sock.send_multipart(__import__("edgesplit.runtime.api.protocol", fromlist=["x"]).encode_request(
                "submit", 1, {"deadline_ms": 60000}, {"*": images[:1]}), copy=False)
        time.sleep(0.3)
        assert client.submit(images[:1]).status == "queue_full"
        status = client.status()
        assert status["queue"]["length"] == 2 and status["tasks"]["ok"] == 40
    for other in waiting:
        other.close()
    daemon.kill()


def test_with_a_peer_every_submit_goes_through_the_serving_thread(make_daemon):
    # An offload may wait on the network up to its deadline: never on the API thread.
    from edgesplit.runtime.bundle.store import load_bundle
    from edgesplit.runtime.default_bundle import default_bundle_path
    from edgesplit.runtime.executor.executor import Executor
    from edgesplit.runtime.peer.background import BackgroundPeer

    peer = BackgroundPeer(Executor(load_bundle(default_bundle_path())), "tcp://127.0.0.1:*")
    try:
        daemon = make_daemon(extra_toml='[peer]\naddress = "%s"\n[action]\ncut = 1\n' % peer.endpoint).start()
        images = heldout(40)
        with daemon.client() as client:
            answers = [client.submit(images[i:i + 1], deadline_ms=2000) for i in range(40)]
            tasks = client.status()["tasks"]
        assert all(a.ok for a in answers) and any(a.cut == 1 for a in answers)
        assert tasks["ok"] == 40 and tasks["direct"] == 0
        assert daemon.stop() == 0
    finally:
        peer.stop()
