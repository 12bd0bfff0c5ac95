"""The device loop without a peer (the daemon's default) takes a shorter path per task: its results, decisions and
trace rows must be the ones the general path gives a task that stays on the board. Real parts: the embedded
bundle on onnxruntime, a real PeerClient whose peer is down (nobody listens at its address), real SQLite stores.
Every clock is a counter, so both runs see the same times and their rows can be compared to the byte."""
import dataclasses
import itertools

from support.daemon_process import heldout
from support.trace_rows import rows
from edgesplit.runtime.bundle.store import load_bundle
from edgesplit.runtime.controller.controller import Controller
from edgesplit.runtime.controller.reward import Bounds
from edgesplit.runtime.controller.strategies import Action, StaticStrategy
from edgesplit.runtime.default_bundle import default_bundle_path
from edgesplit.runtime.device.loop import DeviceLoop
from edgesplit.runtime.executor.executor import Executor
from edgesplit.runtime.traces import TraceStore
from edgesplit.runtime.transport.client import PeerClient


def _counter(step):
    ticks = itertools.count(1)
    return lambda: next(ticks) * step


def _run(bundle, images, db, client=None, defer_every=0, cut=None):
    side = [e.threshold for e in bundle.manifest.exits if e.head is not None]
    last_cut = len(bundle.manifest.main)  # cut k ships after k main segments: this one keeps all on the board
    strategy = StaticStrategy("fixed", Action(tuple(side), last_cut if cut is None else cut, 1, True))
    executor = Executor(bundle, clock=_counter(1e-5))
    with TraceStore(db, batch_size=8, flush_interval_s=60.0, background_commit=True) as store:
        run_id = store.start_run(run_id="r1", started_s=1.0)
        controller = Controller(strategy, Bounds(0.0005, 2.0), q=3,
                                store=store, clock=_counter(1e-3), run_id=run_id)
        loop = DeviceLoop(executor, controller, client=client, store=store, clock=_counter(1e-4), deadline_s=0.25,
                          energy=lambda busy, idle: 3.0 * busy + idle, run_id=run_id)
        results = []
        for i in range(len(images)):
            deferred = bool(defer_every) and i % defer_every == 0
            results.append(loop.process(i, images[i:i + 1], label=i % 10, defer_trace=deferred,
                                        inputs_checked=i % 2 == 0))
            if deferred and i % 3 == 0:
                loop.write_deferred_trace()  # some written at once, the rest by the next task
        loop.finish()
        decisions = list(controller.decisions)
    return results, decisions


def test_a_loop_without_a_peer_gives_the_rows_and_results_of_a_down_peers_local_tasks(tmp_path):
    bundle = load_bundle(default_bundle_path())
    images = heldout(40)
    client = PeerClient("ipc://%s" % (tmp_path / "nobody-listens"), bundle.wire_hash, probe_timeout_s=0.05)
    client.peer_alive = False  # down: every task stays on the board, as without a peer
    try:
        general = _run(bundle, images, tmp_path / "general.db", client=client, defer_every=4)
    finally:
        client.close()
    local = _run(bundle, images, tmp_path / "local.db", defer_every=4)

    # The bounds are tight enough that some intervals meet them and some do not: the rewards differ per task.
    assert len({d["reward"] for d in local[1]}) > 2
    assert local[1] == general[1]
    for mine, theirs in zip(local[0], general[0]):
        assert dataclasses.asdict(mine) == dataclasses.asdict(theirs)
    for table in ("tasks", "transitions"):
        assert rows(tmp_path / "local.db", table) == rows(tmp_path / "general.db", table), table
    assert len(rows(tmp_path / "local.db", "tasks")) == 40
    assert len(rows(tmp_path / "local.db", "transitions")) == 40


def test_without_a_peer_an_action_that_stops_at_an_earlier_cut_still_runs_every_task_to_an_exit(tmp_path):
    # A policy may choose cut 0-2 on a daemon with no peer configured: there is nobody to ship to, so the cut is not
    # where the run stops (stopping there would make every task a fallback). Same exits and answers as at the last cut.
    bundle = load_bundle(default_bundle_path())
    images = heldout(30)
    early, _ = _run(bundle, images, tmp_path / "early.db", cut=1)
    board, _ = _run(bundle, images, tmp_path / "board.db")
    assert all(r.exit_id is not None and not r.fallback and r.cut is None and r.planned_cut == 1 for r in early)
    assert [(r.exit_id, r.result) for r in early] == [(r.exit_id, r.result) for r in board]
    assert len(rows(tmp_path / "early.db", "tasks")) == 30
