"""The closed loop end to end with real processes: edgesplit serve (an emulated Nano whose software link replays
a recording its policy was not built on) with a real edgesplit peer, its trace database copied off, edgesplit
train --from-traces on the copy, the policy file replaced and SIGHUP, later tasks decided by the new policy.

The mechanics only; whether the SR rises is bench/closed_loop.py's question."""
import json
import shutil
import sqlite3
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from edgesplit.codegen.learning.closed_loop import (BoardSetup, ServedBoard, TrainSetup, export_traces,
                                                    install_policy, last_seq, phase_figures, train,
                                                    write_recording)
from edgesplit.policies_lite import load_policy
from edgesplit.runtime.controller.state import FEATURES
from edgesplit.runtime.controller.strategies import load_policy_strategy
from edgesplit.runtime.default_bundle import DEMO_POLICY_FILE, default_bundle_path, load_heldout
from edgesplit.runtime.emulation.link.shipped import resolve_recording

ROOT = Path(__file__).resolve().parents[2]
# Held out of training in the named split of the shared recordings (codegen/learning/trace_split.py);
# where ../shared is absent, a shipped recording stands in (the demo policy was built on it: mechanics only).
HELD_OUT = ROOT.parent / "shared" / "traces" / "norway_hsdpa_3g" / "norway_ferry_3"
DEMO_MEAN_MBPS = 0.446  # the demo's mean link rate after its scaling (bench/environment_reality.py)


@pytest.fixture
def board_setup(tmp_path):
    source = HELD_OUT if HELD_OUT.is_file() else resolve_recording("norway_car_3")
    network = tmp_path / "network.txt"
    write_recording(source, network, mean_mbps=DEMO_MEAN_MBPS, seconds=30)
    training = tmp_path / "training.txt"
    write_recording(resolve_recording("ghent_bus_0001"), training, mean_mbps=DEMO_MEAN_MBPS)
    return BoardSetup(recording=network), training


def _transitions(db: Path, policy_id: str):
    with sqlite3.connect(str(db)) as conn:
        rows = conn.execute("SELECT state, action FROM transitions WHERE policy_id = ? ORDER BY seq",
                            (policy_id,)).fetchall()
    return [(json.loads(s), json.loads(a)) for s, a in rows]


def test_board_traces_retrain_the_policy_that_sighup_then_serves(make_peer, board_setup, tmp_path):
    setup, training_recording = board_setup
    peer = make_peer(default_bundle_path())
    served = tmp_path / "policy.npz"
    shutil.copyfile(str(DEMO_POLICY_FILE), str(served))
    first_id = load_policy(served).policy_id
    images, labels = load_heldout()
    board = ServedBoard(tmp_path / "board", setup, peer.endpoint, served)
    try:
        board.start()
        assert board.cli_status()["board"] == "jetson_nano_cpu (emulated)"
        answers = board.feed(images, labels, 40)
        assert all(a["status"] == "ok" for a in answers)

        exported = tmp_path / "exported.db"
        counts = export_traces(board.traces, exported)
        assert counts["tasks"] >= 30 and counts["transitions"] >= 5

        new = tmp_path / "retrained.npz"
        # 40 tasks are too few to calibrate from or to guard with (tests/learning/test_retraining.py does both)
        summary = train(setup, TrainSetup(recordings=[training_recording], from_traces=[exported], out=new,
                                          seed=0, epochs=30, episode_tasks=60,
                                          extra=["--no-calibrate", "--no-board-network", "--no-guard"]))
        # Every logged transition of the board went into the replay buffer ...
        assert summary["offline_transitions"] == counts["transitions"]
        provenance = load_policy(new).provenance
        assert [entry["path"] for entry in provenance["from_traces"]] == [str(exported)]  # ... and it says so
        new_id = summary["policy_id"]
        assert new_id != first_id

        install_policy(new, served)
        board.reload(new_id)
        assert board.cli_status()["policy"]["policy_id"] == new_id
        before = last_seq(board.traces)
        answers = board.feed(images, labels, 30, offset=40)
        assert all(a["status"] == "ok" and a["policy_id"] == new_id for a in answers)
        assert board.stop() == 0
    finally:
        board.cleanup()

    after = phase_figures(board.traces, new_id, setup.latency_bound_ms / 1e3, setup.energy_bound_mj, before)
    assert after["tasks"] == 30
    # Later decisions are the new policy's: each logged action is what it decides from the logged state.
    strategy = load_policy_strategy(new, 2, 4)
    decided = _transitions(board.traces, new_id)
    assert len(decided) >= 3
    for state, action in decided:
        expected = strategy.decide(dict(zip(FEATURES, state)))
        assert (action["cut"], action["interval"]) == (expected.cut, expected.interval)
        np.testing.assert_allclose(action["thresholds"], expected.thresholds, atol=1e-3)
    # and the transitions before the reload were the old policy's
    assert _transitions(board.traces, first_id)


def test_a_board_slower_than_believed_serves_at_its_scale_while_train_is_told_the_belief(make_peer, board_setup,
                                                                                          tmp_path):
    setup, training_recording = board_setup
    slow = replace(setup, served_workload_scale=140.0)  # the board: 25 % slower than the profile train believes
    peer = make_peer(default_bundle_path())
    served = tmp_path / "policy.npz"
    shutil.copyfile(str(DEMO_POLICY_FILE), str(served))
    images, labels = load_heldout()
    board = ServedBoard(tmp_path / "board", slow, peer.endpoint, served)
    try:
        board.start()
        assert all(a["status"] == "ok" for a in board.feed(images, labels, 5))
        assert board.stop() == 0
    finally:
        board.cleanup()
    # The daemon served, and logged, the slower board ...
    with sqlite3.connect(str(board.traces)) as conn:
        [config] = [json.loads(r[0]) for r in conn.execute("SELECT config FROM runs")]
    assert config["emulation"]["workload_scale"] == 140.0
    # ... while train is told what the workstation believes (the calibration from the traces finds the rest).
    argv = TrainSetup(recordings=[training_recording], from_traces=[board.traces], out=tmp_path / "p.npz").argv(slow)
    assert argv[argv.index("--workload-scale") + 1] == "112.0"
