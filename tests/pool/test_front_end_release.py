"""A front end whose replicas vanish answers the requests already waiting on them at once, ``overloaded``, rather than
letting them wait out their deadlines: their devices finish them locally and move to their next front end.

Before this, a device at 10 tasks/s with a 1 s deadline lost 3 tasks to their full deadline when the application was
deleted under its front end (docs/pool.md). How Ray Serve's handle behaves for a call in flight when its application
is deleted cannot be made to happen on cue, so the engine here is a stand-in with the two behaviours that matter: a
call that never returns, and a health call that says the replicas are gone. Everything else is real: the front end,
its ZeroMQ socket and a device's ``PeerClient``."""
import asyncio
import contextlib
import threading
import time

import numpy as np
import pytest

from edgesplit.runtime.pool.front_end import PoolFrontEnd
from edgesplit.runtime.transport.client import PeerClient

BUNDLE = "ab" * 32


class VanishingReplicas:
    """Calls that never return (the replicas are gone mid-call); ``check`` says so once ``gone`` is set."""

    def __init__(self):
        self.gone = ""
        self.calls_cancelled = 0
        self.checks = self.status_reads = 0

    async def call(self, cut, tensors, thresholds, use_exits, timeout_s, loop_clock):
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.calls_cancelled += 1
            raise

    async def check(self, timeout_s):
        self.checks += 1
        return self.gone

    async def status_problem(self):
        self.status_reads += 1
        return self.gone


@contextlib.contextmanager
def serving(front):
    """The front end bound on loopback and serving on its own event loop in a thread; yields (endpoint, box): the
    loop's stats land in ``box["stats"]`` once it stops."""
    endpoint = front.bind("tcp://127.0.0.1:*")
    ready, box = threading.Event(), {}

    def main():
        async def run():
            box["loop"], box["stop"] = asyncio.get_event_loop(), asyncio.Event()
            ready.set()
            box["stats"] = await front.serve(box["stop"], poll_ms=20)
        asyncio.run(run())

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield endpoint, box
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(10)
        front.close()


def devices(endpoint, count, deadline_s, outcomes):
    """``count`` devices, each offloading once on its own connection (threads, started); outcomes appended."""
    def device():
        with PeerClient(endpoint, BUNDLE) as client:
            outcomes.append(client.offload(2, {"x": np.zeros((1, 4), np.float32)}, deadline_s=deadline_s))

    started = [threading.Thread(target=device) for _ in range(count)]
    for t in started:
        t.start()
    return started


@pytest.mark.parametrize("health_period_s", [0.1, 60.0])
def test_requests_waiting_on_replicas_that_vanish_are_answered_overloaded_at_once(health_period_s):
    """With a short health period the full check finds it; with a long one, Serve's status read while requests wait
    with no answer (every ``quick_s``) does, long before the period and the requests' deadlines."""
    engine = VanishingReplicas()
    front = PoolFrontEnd(engine, BUNDLE, health_period_s=health_period_s, health_timeout_s=1.0, quick_s=0.1)
    outcomes = []
    with serving(front) as (endpoint, box):
        waiting = devices(endpoint, 3, 30.0, outcomes)
        deadline = time.monotonic() + 10
        while len(front._tasks) < 3 and time.monotonic() < deadline:  # all three in flight at the front end
            time.sleep(0.01)
        assert len(front._tasks) == 3
        engine.gone = "Ray Serve runs no replica of the application (deleted)"
        for t in waiting:
            t.join(20)  # far inside the 30 s deadline: an answer came, not the device's own timeout
            assert not t.is_alive()
    assert [o.peer_status for o in outcomes] == ["overloaded"] * 3, [o.message for o in outcomes]
    assert all("no replica behind this front end answers" in o.message for o in outcomes)
    assert engine.calls_cancelled == 3  # the replicas' calls were given up, not left running
    assert box["stats"].unavailable == 3 and box["stats"].expired == 0
    if health_period_s == 60.0:
        assert engine.checks == 0 and engine.status_reads >= 1  # found by the status read alone


def test_a_status_read_that_finds_nothing_wrong_does_not_stand_for_a_health_check():
    """Slow replicas (calls still running) and Serve's status fine: nothing is released, nothing refused."""
    engine = VanishingReplicas()
    front = PoolFrontEnd(engine, BUNDLE, health_period_s=60.0, health_timeout_s=1.0, quick_s=0.05)
    outcomes = []
    with serving(front) as (endpoint, _):
        for t in devices(endpoint, 1, 1.0, outcomes):
            t.join(20)
    assert engine.status_reads >= 3 and engine.checks == 0 and not front.unhealthy
    assert outcomes[0].peer_status != "overloaded"  # it waited its deadline, as a slow replica's request should
