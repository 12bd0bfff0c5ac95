"""``train --from-traces`` makes the environment look like the board before training and guards what it writes:
the timing calibrated from a real run's trace database, the board's network rebuilt from the task rows, and the
guard that refuses a policy scoring below the one the board served (codegen/learning/retraining.py)."""
import json
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.workstation

from edgesplit.codegen.learning import retraining  # noqa: E402
from edgesplit.codegen.learning.environment import Environment, Recording, Scenario, StaticModel  # noqa: E402
from edgesplit.policies_lite import load_policy  # noqa: E402
from edgesplit.runtime.controller.strategies import load_policy_strategy, remote_only  # noqa: E402
from edgesplit.runtime.default_bundle import DEMO_POLICY_FILE, default_bundle_path, load_heldout, \
    resolve_bundle  # noqa: E402
from edgesplit.runtime.traces import TraceStore  # noqa: E402

EDGESPLIT = [sys.executable, "-m", "edgesplit.runtime.cli"]
LINK_SCALE = 3136.0 / 12288.0  # the demo's
BOARD = ["--board", "jetson_nano_cpu", "--workload-scale", "112", "--energy-bound", "900"]


def _run(*args, timeout=300):
    return subprocess.run(EDGESPLIT + [str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=timeout)


def _scenario(**changes):
    return replace(Scenario(bundle_dir=Path(default_bundle_path()), board="jetson_nano_cpu",
                            recordings=["norway_car_3"], workload_scale=112.0, energy_bound=900.0,
                            link_scale=LINK_SCALE), **changes)


def _board_run(root: Path, peer, tasks: int, workload_scale: float = 112.0) -> Path:
    """A real ``edgesplit run`` against a real peer over the software link, serving a copy of the demo policy, as the
    emulated Nano at ``workload_scale``."""
    images, labels = load_heldout()
    reps = int(np.ceil(tasks / len(labels)))
    np.save(root / "x.npy", np.concatenate([images] * reps)[:tasks])
    np.save(root / "y.npy", np.concatenate([labels] * reps)[:tasks].astype(np.int64))
    policy = root / "served.npz"
    shutil.copyfile(str(DEMO_POLICY_FILE), str(policy))
    db = root / ("board_%d_x%g.db" % (tasks, workload_scale))
    board = BOARD[:3] + [str(workload_scale)] + BOARD[4:]
    done = _run("run", "default", *board, "--speedup", "4", "--peer", peer.endpoint, "--link", "norway_car_3",
                "--link-scale", LINK_SCALE, "--rtt-ms", "20", "--inputs", root / "x.npy", "--labels", root / "y.npy",
                "--policy", policy, "--traces", db, "--json", timeout=600)
    assert done.returncode == 0, done.stderr
    return db


@pytest.fixture(scope="module")
def board_db(tmp_path_factory):
    from edgesplit.runtime.peer.process import PeerProcess

    root = tmp_path_factory.mktemp("board")
    peer = PeerProcess(default_bundle_path())
    try:
        yield _board_run(root, peer, 240), _board_run(root, peer, 40)
    finally:
        peer.stop()


def test_calibration_from_a_database_changes_the_scenarios_timing(board_db):
    db, _ = board_db
    scenario = _scenario()
    [run] = retraining.read_board_runs([db])
    calibrated, report = retraining.calibrate_from_runs([run], scenario, Path(str(scenario.recordings[0])))
    # Every segment call the board logged, less what the cost model says it takes at the board's calibrated speed, is
    # now a sample the environment draws from; the per-task overhead is the board's, not the default.
    static = StaticModel(replace(scenario, workload_scale=calibrated.workload_scale))
    modelled = dict(zip(static.main_ids, static.cost.main_s))
    modelled.update(zip(static.head_ids, static.cost.head_s))
    with sqlite3.connect(str(db)) as conn:
        logged = [json.loads(r[0]) for r in conn.execute("SELECT segment_times FROM tasks")]
    expected = sorted(t - modelled[s] for times in logged for s, t in times.items())
    np.testing.assert_allclose(sorted(calibrated.segment_excess_s), expected)
    assert calibrated.task_overhead_s == report["task_overhead_s"] != scenario.task_overhead_s
    assert report["tasks_on_device"] >= retraining.MIN_CALIBRATION_TASKS
    assert "segment_excess_s" in report["applied"]
    # The exchange figures cannot be measured against a rate rebuilt from the same transfers: they stay.
    assert (calibrated.exchange_overhead_s, calibrated.exchange_jitter_s) == (scenario.exchange_overhead_s,
                                                                              scenario.exchange_jitter_s)
    # And it shows: the same policy, seed and recording run differently.
    policy = load_policy_strategy(DEMO_POLICY_FILE, 2, 4)
    before = Environment(replace(scenario, episode_tasks=200)).run(policy, seed=0)
    after = Environment(replace(calibrated, episode_tasks=200)).run(policy, seed=0)
    assert not np.array_equal(before.per_task["latency_s"], after.per_task["latency_s"])


SLOW_SCALE = 140.0  # a board 25 % slower than the workload scale (112) train is told


@pytest.fixture(scope="module")
def slow_board_db(tmp_path_factory):
    from edgesplit.runtime.peer.process import PeerProcess

    root = tmp_path_factory.mktemp("slow_board")
    peer = PeerProcess(default_bundle_path())
    try:
        yield _board_run(root, peer, 240, workload_scale=SLOW_SCALE)
    finally:
        peer.stop()


def test_a_board_slower_than_believed_is_calibrated_to_its_own_speed(slow_board_db, board_db):
    scenario = _scenario()  # what the workstation believes: workload 112
    [slow] = retraining.read_board_runs([slow_board_db])
    assert slow.config["emulation"]["workload_scale"] == SLOW_SCALE
    calibrated, report = retraining.calibrate_from_runs([slow], scenario, Path(str(scenario.recordings[0])))
    # The segment calls' own times say how fast the board is: the training scenario runs at the board's scale.
    assert calibrated.workload_scale == pytest.approx(SLOW_SCALE, rel=0.05)
    assert report["speed"]["believed_workload_scale"] == 112.0
    assert report["speed"]["workload_scale"] == calibrated.workload_scale
    assert "workload_scale" in report["applied"]
    # The report shows both models: the believed one (what train was told) and the calibrated one.
    static = StaticModel(scenario)
    believed = dict(zip(static.main_ids, static.cost.main_s))
    speed = report["speed"]
    for segment in ("main0", "main1"):
        assert speed["segment_modelled_s_believed"][segment] == pytest.approx(believed[segment])
        assert speed["segment_modelled_s"][segment] == pytest.approx(believed[segment] * speed["ratio"])
    # What is left beyond the slower board's model is the per-call overhead, not the slowdown: at the believed
    # scale every call of the main branch would be late by a quarter of its modelled time.
    assert np.median(calibrated.segment_excess_s) < 0.25 * min(static.cost.main_s)
    # A board as fast as believed keeps about its scale.
    [same] = retraining.read_board_runs([board_db[0]])
    kept, _ = retraining.calibrate_from_runs([same], scenario, Path(str(scenario.recordings[0])))
    assert kept.workload_scale == pytest.approx(112.0, rel=0.05)
    # The speed is measured only when calibrating: without it a run at another scale is refused, naming it.
    retraining.check_runs_match([slow], scenario, calibrating=True)
    with pytest.raises(retraining.RetrainingError, match="workload scale 140"):
        retraining.check_runs_match([slow], scenario, calibrating=False)


def test_a_database_too_small_to_calibrate_from_is_refused_by_name(board_db, tmp_path):
    _, small = board_db
    done = _run("train", "--algo", "ddpg", *BOARD, "--link-traces", "norway_car_3", "--link-scale", LINK_SCALE,
                "--from-traces", small, "--epochs", "5", "--seed", "0", "--out", tmp_path / "p.npz", "--no-progress")
    assert done.returncode == 1
    assert str(small) in done.stderr and "at least %d" % retraining.MIN_CALIBRATION_TASKS in done.stderr, done.stderr
    assert "--no-calibrate" in done.stderr
    assert not (tmp_path / "p.npz").exists()
    with pytest.raises(retraining.RetrainingError, match="ran segments on the device"):
        retraining.calibrate_from_runs(retraining.read_board_runs([small]), _scenario(), Path("unused"))


def _environment_db(path: Path, scenario: Scenario, strategy, tasks: int) -> Path:
    env = Environment(replace(scenario, episode_tasks=tasks))
    with TraceStore(str(path)) as store:
        env.run(strategy, seed=0, store=store)
    return path


def test_the_rebuilt_network_is_the_rate_the_logged_transfers_saw(tmp_path):
    # A square wave 1.0 / 0.4 Mbit/s in 10 s halves, deterministic timing: every task offloaded at cut 0.
    wave = Recording("wave", 1.0, np.array(([1.0e6] * 10 + [0.4e6] * 10) * 2))
    quiet = dict(segment_overhead_s=0.0, task_overhead_s=0.0, exchange_overhead_s=0.0, reply_overhead_s=0.0,
                 timeout_grace_s=0.0, exchange_jitter_s=0.0, segment_hiccup_p=0.0, link_scale=1.0,
                 latency_bound_s=0.5, energy_bound=None)
    scenario = _scenario(recordings=[wave], **quiet)
    db = _environment_db(tmp_path / "wave.db", scenario, remote_only(2), 400)
    [run] = retraining.read_board_runs([db])
    recording, report = retraining.reconstruct_network(run, scenario, retraining.reply_bytes(resolve_bundle("default")))
    assert report["seconds"] == 40 and report["seconds_from"]["transfers"] == 40
    rates = np.asarray(recording.rates_bps)
    # Seconds where the rate steps hold a transfer that straddles the step; every other second is the link's rate.
    steady = [k for k in range(40) if k % 10 not in (0, 9)]
    np.testing.assert_allclose(rates[steady], wave.rates_bps[steady], rtol=0.02)
    # The rebuilt recording, replayed in the same environment, gives the logged transfer times back.
    with sqlite3.connect(str(db)) as conn:
        logged = np.array([r[0] for r in conn.execute("SELECT transfer_s FROM tasks ORDER BY task_id")])
    replayed = Environment(replace(scenario, recordings=[recording], episode_tasks=400)).run(remote_only(2), seed=0)
    # (Mean and quartiles: half the tasks see each rate, so the median sits on the edge between the two groups and
    # one task moved across a step by the probes' timing flips it.)
    got = replayed.per_task["transfer_s"]
    np.testing.assert_allclose(np.mean(got), np.mean(logged), rtol=0.02)
    np.testing.assert_allclose(np.percentile(got, [25, 75]), np.percentile(logged, [25, 75]), rtol=0.02)
    # The environment multiplies by the link scale, so the rebuilt rates are divided by it.
    scaled, _ = retraining.reconstruct_network(run, replace(scenario, link_scale=0.5), retraining.reply_bytes(
        resolve_bundle("default")))
    np.testing.assert_allclose(np.asarray(scaled.rates_bps), 2 * rates)


def _guard_env(tmp_path):
    slow = Recording("slow", 1.0, np.full(30, 0.15e6))  # too slow to offload within 100 ms: remote-only fails
    return Environment(_scenario(recordings=[slow], episode_tasks=150, link_scale=1.0))


def _remote_only_policy(path: Path) -> Path:
    """A real policy file whose actor always decides cut 0 (sigmoid outputs ~0 for thresholds and cut)."""
    from edgesplit.codegen.learning.ddpg import DDPG, ActionCodec, Args
    from edgesplit.runtime.controller.state import EDGEML_FEATURES as FEATURES  # what DDPG reads

    agent = DDPG(len(FEATURES), ActionCodec(2, 4, 5), Args())
    with torch.no_grad():
        agent.actor.layers[-1].weight.zero_()
        agent.actor.layers[-1].bias.fill_(-12.0)
    agent.set_normalisation(np.zeros(len(FEATURES)), np.ones(len(FEATURES)))
    agent.export(path, FEATURES, {"algorithm": "test", "energy_unit": "mJ"})
    return path


def test_the_guard_refuses_a_worse_policy_and_accepts_a_better_one(tmp_path):
    env = _guard_env(tmp_path)
    seeds = [0, 1]
    remote = _remote_only_policy(tmp_path / "remote.npz")
    assert load_policy_strategy(remote, 2, 4).decide({"latency_mean_s": 0.05, "energy_mean": 100.0,
                                                      "bandwidth_mbps": 0.2, "peer_alive": 1.0}).cut == 0
    planner = retraining.Incumbent("the demo policy", None, path=Path(DEMO_POLICY_FILE))
    worse = retraining.judge(env, remote, planner, seeds)
    assert not worse["passed"] and worse["new"]["sr"] < worse["incumbent"]["sr"]
    assert "< the incumbent's" in worse["reason"]
    static_remote = retraining.Incumbent("remote-only", None, action=remote_only(2).action.to_dict())
    better = retraining.judge(env, Path(DEMO_POLICY_FILE), static_remote, seeds)
    assert better["passed"] and better["new"]["sr"] > better["incumbent"]["sr"]
    assert better["new"]["episodes"] == len(seeds) and better["new"]["tasks"] == 150 * len(seeds)


def test_train_writes_only_what_the_guard_passes_unless_forced(board_db, tmp_path):
    db, _ = board_db
    out = tmp_path / "p.npz"
    argv = ["train", "--algo", "ddpg", *BOARD, "--link-traces", "norway_car_3", "--link-scale", LINK_SCALE,
            "--from-traces", db, "--epochs", "20", "--episode-tasks", "100", "--seed", "0", "--out", out,
            "--guard-seeds", "2", "--json", "--no-progress"]
    done = _run(*argv)
    assert done.returncode in (0, retraining.REFUSED_EXIT_CODE), done.stderr
    summary = json.loads(done.stdout)
    guard = summary["guard"]
    # The incumbent is the policy the run names as serving its tasks.
    assert guard["incumbent"]["policy_id"] == load_policy(DEMO_POLICY_FILE).policy_id
    assert summary["retraining"]["calibration"]["tasks_on_device"] >= retraining.MIN_CALIBRATION_TASKS
    assert summary["retraining"]["networks"][0]["seconds"] >= retraining.MIN_NETWORK_SECONDS
    passed = guard["new"]["sr"] >= guard["incumbent"]["sr"] and \
        guard["new"]["accuracy"] >= guard["incumbent"]["accuracy"] - retraining.ACCURACY_ALLOWANCE
    assert guard["passed"] == passed
    if passed:
        assert done.returncode == 0 and out.is_file() and summary["written"]
    else:
        assert done.returncode == retraining.REFUSED_EXIT_CODE and not out.exists() and not summary["written"]
        assert "the guard refused" in done.stderr and "--force" in done.stderr
    done = _run(*argv, "--force", "--overwrite")  # --overwrite: the first run wrote p.npz if the guard passed it
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert out.is_file() and summary["written"] and summary["guard"]["forced"] == (not summary["guard"]["passed"])
    provenance = load_policy(out).provenance
    assert provenance["retraining"]["calibration"]["applied"] and provenance["retraining"]["networks"]


def test_without_an_incumbent_on_record_the_guard_asks_for_one(board_db, tmp_path):
    db, _ = board_db
    copy = tmp_path / "copy.db"
    shutil.copyfile(str(db), str(copy))
    with sqlite3.connect(str(copy)) as conn:
        conn.execute("UPDATE tasks SET policy_id = 'reloaded-since'")
    with pytest.raises(retraining.RetrainingError, match="--incumbent P.npz"):
        retraining.find_incumbent(retraining.read_board_runs([copy]), None)


def test_the_plan_carries_the_boards_timing_and_networks_to_another_scenario(board_db, tmp_path):
    from types import SimpleNamespace

    db, _ = board_db
    args = SimpleNamespace(from_traces=[str(db)], no_calibrate=False, no_board_network=False, board_network_share=0.5,
                           incumbent=None, guard_seeds=2, guard_accuracy_allowance=0.015, no_guard=False, force=False,
                           candidates=1)
    scenario = _scenario()
    plan = retraining.prepare(args, scenario, resolve_bundle("default"), tmp_path)
    assert plan.incumbent.policy_id == load_policy(DEMO_POLICY_FILE).policy_id  # the file the run names
    [network] = plan.board_recordings
    assert plan.guard.recordings == [network] and plan.guard.segment_excess_s == plan.training.segment_excess_s
    # The training recordings: the one given, then the board's network as often (share 0.5).
    assert plan.training.recordings == ["norway_car_3", network]
    # An algorithm's own scenario (e.g. its validation recordings) gets the same timing, with or without the network.
    other = _scenario(recordings=["ghent_bus_0001", "norway_car_3", "ghent_bus_0001"])
    applied = plan.apply(other)
    assert applied.recordings == other.recordings + [network] * 3
    assert applied.task_overhead_s == plan.training.task_overhead_s != other.task_overhead_s
    assert tuple(applied.segment_excess_s) == tuple(plan.training.segment_excess_s)
    assert applied.workload_scale == plan.training.workload_scale == plan.guard.workload_scale  # the board's speed
    assert plan.apply(other, add_networks=False).recordings == other.recordings


def test_a_search_retrained_from_a_board_is_calibrated_and_guarded_too(board_db, tmp_path):
    db, _ = board_db
    out = tmp_path / "searched.npz"
    done = _run("train", "--algo", "search", *BOARD, "--link-traces", "norway_car_3", "ghent_bus_0001",
                "--link-scale", LINK_SCALE, "--from-traces", db, "--generations", "1", "--population", "2",
                "--episode-tasks", "100", "--seed", "0", "--out", out, "--guard-seeds", "2", "--json", "--no-progress")
    assert done.returncode in (0, retraining.REFUSED_EXIT_CODE), done.stderr
    summary = json.loads(done.stdout)
    assert summary["retraining"]["calibration"]["tasks_on_device"] >= retraining.MIN_CALIBRATION_TASKS
    assert summary["retraining"]["networks"][0]["seconds"] >= retraining.MIN_NETWORK_SECONDS
    assert summary["guard"]["incumbent"]["policy_id"] == load_policy(DEMO_POLICY_FILE).policy_id
    assert summary["written"] == out.is_file() == (done.returncode == 0)
    if out.is_file():
        assert load_policy(out).provenance["retraining"]["calibration"]


def test_the_speed_ratio_holds_for_segments_of_nearly_equal_size():
    """Two main blocks of about the same modelled time (no heads): a straight-line fit's slope would be set by the
    0.2 ms of noise between them (0.2 here, a board 5x faster); the board is in fact twice as slow."""
    from edgesplit.codegen.learning.retraining import speed_ratio

    assert speed_ratio({"a": 0.0205, "b": 0.0207}, {"a": 0.010, "b": 0.011}) == pytest.approx(1.97, abs=0.05)
    assert speed_ratio({"a": 0.0466, "b": 0.0439, "h": 0.0050}, {"a": 0.04654, "b": 0.0438, "h": 0.0049}) \
        == pytest.approx(1.0, abs=0.01)
    assert speed_ratio({}, {"a": 0.01}) == 1.0


def test_a_run_without_a_peer_trains_from_its_transitions_once_told_to(tmp_path):
    # No task carries a transfer or an estimate: the network cannot be rebuilt, and the error names every flag that
    # drops a use of it; with them the transitions alone train (the hint used to name one flag, which did not help).
    images, labels = load_heldout()
    np.save(tmp_path / "x.npy", np.concatenate([images] * 2)[:240])
    np.save(tmp_path / "y.npy", np.concatenate([labels] * 2)[:240].astype(np.int64))
    db = tmp_path / "alone.db"
    done = _run("run", "default", *BOARD, "--speedup", "4", "--inputs", tmp_path / "x.npy", "--labels",
                tmp_path / "y.npy", "--policy", DEMO_POLICY_FILE, "--traces", db, "--json", timeout=600)
    assert done.returncode == 0, done.stderr
    train = ["train", "--algo", "ddpg", *BOARD, "--link-traces", "norway_car_3", "--link-scale", LINK_SCALE,
             "--from-traces", db, "--epochs", "3", "--episode-tasks", "50", "--seed", "0", "--no-progress"]
    refused = _run(*train, "--out", tmp_path / "a.npz")
    assert refused.returncode == 1, refused.stderr
    assert "no task carries a transfer" in refused.stderr, refused.stderr
    assert "pass --no-board-network --no-guard --no-calibrate" in refused.stderr, refused.stderr
    told = _run(*train, "--no-board-network", "--no-guard", "--no-calibrate", "--out", tmp_path / "b.npz")
    assert told.returncode == 0, told.stderr
    assert load_policy(tmp_path / "b.npz").provenance["from_traces"]


@pytest.mark.parametrize("content, message", [
    (lambda good: good[:len(good) // 2], "damaged"),  # cut short
    (lambda good: b"seconds,mbps\n0,1\n", "--incumbent"),  # not a policy at all
])
def test_a_damaged_incumbent_is_one_clear_error(tmp_path, content, message):
    from edgesplit.runtime.default_bundle import DEMO_POLICY_FILE

    bad = tmp_path / "incumbent.npz"
    bad.write_bytes(content(Path(DEMO_POLICY_FILE).read_bytes()))
    with pytest.raises(retraining.RetrainingError, match=message) as caught:
        retraining.find_incumbent([], bad)
    assert str(bad) in str(caught.value)
