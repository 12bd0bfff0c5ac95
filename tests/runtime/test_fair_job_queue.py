"""FairJobQueue.idle: what the daemon's direct path asks before running a submit on the API thread."""
import queue
import threading

import pytest

from edgesplit.runtime.fair_queue import FairJobQueue


class _Job:
    def __init__(self, identity: bytes):
        self.identity = identity


def test_idle_only_when_nothing_waits_and_nothing_taken_is_unanswered():
    jobs = FairJobQueue(maxsize=4)
    assert jobs.idle()
    jobs.put_nowait(_Job(b"a"))
    assert not jobs.idle()  # one waits
    taken = jobs.get(timeout=1.0)
    assert taken.identity == b"a" and not jobs.idle()  # taken, still being served
    jobs.task_done()
    assert jobs.idle()
    with pytest.raises(queue.Empty):
        jobs.get(timeout=0.01)
    assert jobs.idle()  # an empty get takes nothing


def test_idle_seen_from_another_thread_while_a_job_is_served():
    jobs = FairJobQueue(maxsize=4)
    jobs.put_nowait(_Job(b"a"))
    served, release = threading.Event(), threading.Event()

    def serve():
        jobs.get(timeout=1.0)
        served.set()
        release.wait(5.0)
        jobs.task_done()

    worker = threading.Thread(target=serve)
    worker.start()
    assert served.wait(5.0)
    assert not jobs.idle() and jobs.qsize() == 0
    release.set()
    worker.join(5.0)
    assert jobs.idle()
