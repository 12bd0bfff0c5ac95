"""The baselines of the learning loop: each one's action is what its definition says, MOEA's is on its Pareto
front, and the hindsight oracle is at least as good as every strategy on the same seed and recording."""
import itertools
import math

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("pymoo")

from edgesplit.codegen.learning.baselines import (AblatedPolicy, Profiling, Window, ablations, local_only,  # noqa: E402
                                                   moea_action, neurosurgeon, oracle_actions, pick_from_front,
                                                   predict_over, remote_only, run_oracle, single_threshold,
                                                   static_baselines)
from edgesplit.runtime.controller.planner import CostModel, ExitStats, predict  # noqa: E402
from edgesplit.runtime.controller.reward import Bounds  # noqa: E402
from edgesplit.runtime.controller.strategies import Action, StaticStrategy, load_policy_strategy  # noqa: E402
from edgesplit.runtime.default_bundle import DEMO_POLICY_FILE  # noqa: E402


def small_case(train_mbps=(2.0,), n=200, seed=0) -> Profiling:
    """Two side exits (on cuts 1 and 2), three main segments, 10 ms each; the input is big, later tensors small."""
    rng = np.random.RandomState(seed)
    entropies = rng.uniform(0, 1, size=(n, 2))
    # Confident exits are right more often; the final exit is right most often.
    correct = np.stack([rng.uniform(size=n) > entropies[:, 0], rng.uniform(size=n) > entropies[:, 1] * 0.6,
                        rng.uniform(size=n) > 0.03], axis=1)
    cost = CostModel(main_s=[0.010, 0.010, 0.010], head_s=[0.002, 0.002], head_cut=[1, 2],
                     cut_bytes=[40000, 4000, 1000, 500], rtt_s=0.005, peer_s=0.001,
                     energy=lambda busy, idle: 1000.0 * (5.0 * busy + 1.0 * idle))
    return Profiling(ExitStats(entropies, correct), cost, Bounds(0.035, math.inf),
                     np.array([m * 1e6 for m in train_mbps]), (0.3, 0.2))


def test_static_baselines_do_what_their_definitions_say():
    p = small_case()
    assert local_only(p).action == Action((0.3, 0.2), 3, 1, True)
    assert remote_only(p).action == Action((0.0, 0.0), 0, 1, False)
    single = single_threshold(p).action
    assert len(set(single.thresholds)) == 1 and single.use_exits


def test_neurosurgeon_is_the_lowest_latency_cut_at_the_training_bandwidth_without_exits():
    for mbps in (0.5, 2.0, 100.0):
        p = small_case(train_mbps=(mbps,))
        action = neurosurgeon(p).action
        assert action.use_exits is False
        latencies = [predict([0, 0], cut, False, mbps * 1e6, True, p.stats, p.cost, p.bounds).latency_s
                     for cut in range(p.n_cuts)]
        assert action.cut == int(np.argmin(latencies)), (mbps, latencies)
    # Chosen on the training rates: a fast training link sends the input, a slow one keeps it.
    assert neurosurgeon(small_case(train_mbps=(100.0,))).action.cut == 0
    assert neurosurgeon(small_case(train_mbps=(0.05,))).action.cut == 3


def test_edgeml_ablations_tie_the_thresholds_or_drop_the_exits_and_keep_cut_and_interval():
    inner = StaticStrategy("x", Action((0.2, 0.5, 0.7), 2, 3, True))
    t1, tl, nonbranch = ablations(inner)
    assert t1.decide({}) == Action((0.2, 0.2, 0.2), 2, 3, True)
    assert tl.decide({}) == Action((0.7, 0.7, 0.7), 2, 3, True)
    assert nonbranch.decide({}) == Action((0.2, 0.5, 0.7), 2, 3, False)
    assert [a.name for a in (t1, tl, nonbranch)] == ["edgeml-t1", "edgeml-tl", "edgeml-nonbranch"]
    with pytest.raises(ValueError, match="one of t1, tl, nonbranch"):
        AblatedPolicy(inner, "t2")


def test_ablations_of_a_real_frozen_policy_follow_its_decisions():
    policy = load_policy_strategy(DEMO_POLICY_FILE, 2, 4, name="policy")
    t1 = AblatedPolicy(policy, "t1")
    for mbps in (0.05, 0.3, 1.0, 5.0):
        state = {"latency_mean_s": 0.05, "energy_mean": 400.0, "bandwidth_mbps": mbps, "peer_alive": 1.0}
        full, tied = policy.decide(state), t1.decide(state)
        assert tied.thresholds == (full.thresholds[0],) * 2 and tied.cut == full.cut


def dominates(a, b) -> bool:
    """Objective rows (sr, accuracy, latency_s): a is no worse everywhere and better somewhere."""
    no_worse = a["sr"] >= b["sr"] and a["accuracy"] >= b["accuracy"] and a["latency_s"] <= b["latency_s"]
    better = a["sr"] > b["sr"] or a["accuracy"] > b["accuracy"] or a["latency_s"] < b["latency_s"]
    return no_worse and better


def test_nsga3_returns_a_pareto_valid_action_chosen_by_the_stated_rule():
    p = small_case(train_mbps=(0.8, 2.0, 6.0))
    result = moea_action(p, seed=3, generations=15, population=24)
    front = result.front
    assert front and result.chosen in front
    assert not any(dominates(a, b) for a, b in itertools.permutations(front, 2))
    # Nothing on a grid of other static actions beats the chosen one on every objective.
    chosen = result.chosen
    for cut in range(p.n_cuts):
        for t in itertools.product((0.0, 0.2, 0.5, 0.8, 1.0), repeat=2):
            sr, acc, lat = predict_over(p, t, cut)
            assert not dominates({"sr": sr, "accuracy": acc, "latency_s": lat}, chosen), (t, cut)
    best_accuracy = max(f["accuracy"] for f in front)
    eligible = [f for f in front if f["accuracy"] >= best_accuracy - 0.015]
    assert chosen["sr"] == max(f["sr"] for f in eligible)
    a = result.action
    assert (list(a.thresholds), a.cut, a.use_exits) == (chosen["thresholds"], chosen["cut"], True)
    again = moea_action(p, seed=3, generations=15, population=24)
    assert again.action == result.action  # deterministic for a seed


def test_pick_from_front_prefers_sr_within_the_accuracy_allowance():
    front = [{"sr": 0.9, "accuracy": 0.90, "latency_s": 0.02}, {"sr": 0.8, "accuracy": 0.99, "latency_s": 0.03},
             {"sr": 0.7, "accuracy": 0.985, "latency_s": 0.01}, {"sr": 0.8, "accuracy": 0.98, "latency_s": 0.02}]
    assert pick_from_front(front) == front[3]  # same SR as front[1], lower latency; front[0] is too inaccurate


def test_oracle_grid_covers_every_cut_with_and_without_exits_and_the_extra_actions():
    extra = [Action((0.07, 0.07), 1, 1, True)]
    actions = oracle_actions(2, 4, thresholds=(0.0, 0.5, 1.01), extra=extra)
    assert len(actions) == 4 * 9 + 4 + 1
    assert Action((0.07, 0.07), 1, 1, True) in actions
    assert {a.cut for a in actions if not a.use_exits} == {0, 1, 2, 3}


def test_window_is_the_difference_of_running_totals():
    before = {"tasks": 4, "sr": 0.5, "accuracy": 1.0, "latency_s": 0.1}
    after = {"tasks": 6, "sr": 0.5, "accuracy": 0.5, "latency_s": 0.07}
    w = Window.between(before, after, reward=0.3)
    assert w.sr == pytest.approx((0.5 * 6 - 0.5 * 4) / 2)
    assert w.accuracy == pytest.approx((0.5 * 6 - 1.0 * 4) / 2)
    assert w.latency_s == pytest.approx((0.07 * 6 - 0.1 * 4) / 2) and w.reward == 0.3
    assert Window(1.0, 0.0, -1.0, 0.5).score() > Window(0.5, 1.0, 1.0, 0.01).score()
    # Nothing met: the faster window wins (a late task delays the next ones).
    assert Window(0.0, 0.0, -0.5, 0.2).score() > Window(0.0, 1.0, -0.4, 0.3).score()


@pytest.fixture(scope="module")
def environment():
    from edgesplit.codegen.learning.environment import Environment, demo_scenario

    scenario = demo_scenario()
    scenario.episode_tasks = 60
    return Environment(scenario, seed=0)


def test_oracle_is_at_least_every_strategy_on_the_same_seed_and_recording(environment):
    from edgesplit.runtime.emulation.link.recording_readers import read_recording
    from edgesplit.runtime.emulation.link.shipped import resolve_recording

    env = environment
    s = env.static
    rates = read_recording(resolve_recording("ghent_bus_0001")).bps * env.scenario.link_scale
    p = Profiling(s.stats, s.cost, env.bounds, rates,
                  tuple(e.threshold for e in s.bundle.manifest.exits if e.head is not None))
    policy = load_policy_strategy(DEMO_POLICY_FILE, env.n_exits, env.n_cuts, name="policy")
    strategies = static_baselines(p) + ablations(policy) + [policy]
    candidates = oracle_actions(env.n_exits, env.n_cuts, thresholds=(0.0, 0.2, 1.01),
                                extra=[x.action for x in strategies if hasattr(x, "action")])
    for seed in (0, 1):
        oracle = run_oracle(env, candidates, seed=seed)
        assert oracle.tasks == env.scenario.episode_tasks
        for strategy in strategies:
            episode = env.run(strategy, seed=seed)
            assert oracle.sr >= episode.sr, (seed, strategy.name, oracle.sr, episode.sr)


def test_stepping_a_clone_leaves_the_originals_history_alone(environment):
    env = environment
    env.reset(seed=2, recording=0, start_s=0.0)
    for _ in range(5):
        env.step(Action((0.2, 0.1), 1, 1, True))
    decisions = [dict(d) for d in env.controller.decisions]
    before = env.episode("x")
    twin = env.clone()
    for _ in range(5):
        twin.step(Action((0.0, 0.0), 0, 2, False))
    after = env.episode("x")
    assert env.controller.decisions == decisions
    assert (after.tasks, after.sr, after.reward) == (before.tasks, before.sr, before.reward)
    assert twin.episode("x").tasks == before.tasks + 10
