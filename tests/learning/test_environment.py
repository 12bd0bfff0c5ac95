"""The virtual-time environment: the runtime's controller, reward, estimator and exit rule over a replayed link."""
from dataclasses import replace

import numpy as np
import pytest

from edgesplit.codegen.learning.environment import Environment, Recording, Scenario, demo_scenario
from edgesplit.codegen.learning.virtual_link import Direction, LinkSchedule
from edgesplit.runtime.controller.reward import TaskOutcome, reward
from edgesplit.runtime.controller.strategies import Action, fixed, local_only, remote_only
from edgesplit.runtime.default_bundle import load_heldout
from edgesplit.runtime.executor.exit_rule import fallback_target, takes_exit
from edgesplit.runtime.traces import TraceStore
from edgesplit.runtime.traces.export import summarize


@pytest.fixture(scope="module")
def profiling_files(tmp_path_factory):
    images, labels = load_heldout()
    base = tmp_path_factory.mktemp("profiling")
    np.save(str(base / "x.npy"), images)
    np.save(str(base / "y.npy"), labels.astype(np.int64))
    return base / "x.npy", base / "y.npy"


def scenario(profiling_files, **changes) -> Scenario:
    x, y = profiling_files
    return replace(demo_scenario(), images=x, labels=y, episode_tasks=200, **changes)


def square_wave(high_bps: float, low_bps: float, seconds: int = 10) -> Recording:
    return Recording("square", 1.0, np.array(([high_bps] * seconds + [low_bps] * seconds) * 3))


def test_a_transfer_integrates_the_rate_across_steps_not_one_rate():
    link = LinkSchedule([1e6, 0.1e6, 0.1e6, 0.1e6], step_s=1.0)
    # 0.5 Mbit handed over at 0.75 s: 0.25 Mbit at 1 Mbit/s, then 0.25 Mbit at 0.1 Mbit/s.
    assert link.serialised_by(0.75, 62500) == pytest.approx(3.5)
    # Replayed twice as fast, a recorded second lasts half an episode second.
    assert LinkSchedule([1e6, 0.1e6], 1.0, recording_speed=2.0).serialised_by(0.0, 62500) == pytest.approx(0.5)
    # The recording repeats when it runs out.
    assert link.rate_at(4.5) == 1e6 and link.rate_at(5.5) == 0.1e6 and link.serialised_by(3.5, 62500) == pytest.approx(4.45)
    # One direction is a FIFO: a second message waits for the first, then half the RTT.
    up = Direction(LinkSchedule([8e6], 1.0), one_way_s=0.01)
    assert up.send(0.0, 1000) == pytest.approx(0.011)
    assert up.send(0.0, 1000) == pytest.approx(0.012)


def test_the_exit_rule_and_the_fallback_target():
    assert takes_exit(0.1, 0.2) and not takes_exit(0.2, 0.2)
    assert list(takes_exit(np.array([0.1, 0.3]), 0.2)) == [True, False]
    assert fallback_target([0.01, 0.05, 0.09], 0.06) == 1
    assert fallback_target([0.01, 0.05, 0.09], 0.001) == 0  # none in time: the first exit after the cut


def test_the_state_sees_the_runtimes_estimate_not_the_link(profiling_files):
    env = Environment(scenario(profiling_files, recordings=[square_wave(2e6, 0.2e6)], recording_speed=1.0,
                               link_scale=1.0))
    episode = env.run(remote_only(env.n_exits))
    t = episode.per_task["time_s"]
    estimate, link = episode.per_task["estimate_bps"], episode.per_task["bandwidth_bps"]
    assert (estimate != link).all()
    # Right after the rate drops the estimate is still near the old rate: it learns from transfers.
    first_low = int(np.argmax(t >= 10.0))
    # (One transfer's sample moves the EWMA by its alpha: within 15 %, and far above the new rate.)
    assert link[first_low] == 0.2e6 and estimate[first_low] == pytest.approx(estimate[first_low - 1], rel=0.15)
    assert estimate[first_low] > 5 * link[first_low]
    # ... and it comes down later, once transfers (or unanswered requests) have shown the slower link.
    assert estimate[first_low + 30] < 0.5 * estimate[first_low]
    # The controller decided on exactly what the tasks recorded as their bandwidth.
    decided = [d["state"]["bandwidth_mbps"] for d in env.controller.decisions]
    assert decided[1] == pytest.approx(estimate[0] / 1e6)


def test_a_peer_down_window_means_local_fallbacks_and_then_offloading_again(profiling_files):
    env = Environment(scenario(profiling_files, recordings=[Recording("flat", 1.0, np.array([5e6]))],
                               link_scale=1.0, peer_down=[(5.0, 10.0)]))
    episode = env.run(fixed("remote cut 0", 0, [0.0, 0.0], use_exits=False))
    t, p = episode.per_task["time_s"], episode.per_task
    inside = (t >= 5.0) & (t < 10.0)
    assert not p["offloaded"][inside].any()
    assert p["fallback"][inside].all()
    assert episode.fallbacks == int(p["fallback"].sum()) and episode.fallbacks >= inside.sum()
    assert p["offloaded"][t < 5.0].all()
    # Back once a probe gets through: the client's backoff (0.25 s doubling to 5 s) bounds the wait.
    back = t[(t >= 10.0) & p["offloaded"]].min()
    assert back <= 10.0 + 5.0 + 1.0 and p["offloaded"][t > back].all()
    assert episode.tasks == 200 and len(p["exit"]) == 200


def test_a_late_device_queues_and_its_latency_includes_the_wait(profiling_files):
    env = Environment(scenario(profiling_files, recordings=[Recording("flat", 1.0, np.array([5e6]))]))
    last = env.n_cuts - 1
    episode = env.run(local_only(env.n_exits, last, [0.0, 0.0]))  # no early exit: 124 ms a task, one every 100 ms
    latency = episode.per_task["latency_s"]
    assert (np.diff(latency) > 0.02).all()
    assert latency[-1] > latency[0] + 199 * 0.02


def test_a_step_runs_its_interval_and_returns_the_runtimes_reward(profiling_files):
    env = Environment(scenario(profiling_files))
    env.reset(seed=3, recording=0, start_s=0.0)
    before = 0
    for action in (Action((0.3, 0.2), 3, 3), Action((0.05, 0.05), 0, 2), Action((1.01, 1.01), 1, 1)):
        step = env.step(action)
        rows = env._rows
        tasks = [TaskOutcome(rows["latency_s"][i], rows["energy"][i], rows["estimate_bps"][i], rows["exit"][i], 3)
                 for i in range(before, len(rows["exit"]))]
        assert len(tasks) == action.interval and step.info["tasks"] == before + action.interval
        assert step.reward == pytest.approx(reward(tasks, env.bounds))
        assert set(env.features[:4]) <= set(step.state) and list(step.state)[:4] == list(env.features[:4])
        before += action.interval


def test_a_clone_continues_exactly_as_the_original(profiling_files):
    env = Environment(scenario(profiling_files))
    env.reset(seed=5)
    for _ in range(10):
        env.step(Action((0.2, 0.1), 1, 2))
    twin = env.clone()
    for action in (Action((0.2, 0.1), 0, 3), Action((0.5, 0.5), 2, 1)):
        a, b = env.step(action), twin.step(action)
        assert a.state == b.state and a.reward == b.reward
    # They are separate: stepping the copy leaves the original where it was.
    tasks = env._info()["tasks"]
    twin.step(Action((0.2, 0.1), 3, 5))
    assert env._info()["tasks"] == tasks and twin._info()["tasks"] == tasks + 5


def test_run_logs_tasks_and_transitions_in_the_boards_schema(profiling_files, tmp_path):
    env = Environment(scenario(profiling_files))
    with TraceStore(str(tmp_path / "env.db")) as store:
        episode = env.run(remote_only(env.n_exits), store=store)
    summary = summarize(str(tmp_path / "env.db"))
    assert summary["rows"]["tasks"] == episode.tasks == 200
    assert summary["rows"]["transitions"] == len(env.controller.decisions) > 0
    assert summary["fallback_tasks"] == episode.fallbacks


def test_a_bad_scenario_or_action_is_refused_naming_the_field(profiling_files):
    from edgesplit.runtime.errors import InputError

    with pytest.raises(InputError, match=r"period_s must be > 0.*peer_down\[0\]"):
        Environment(scenario(profiling_files, period_s=0.0, peer_down=[(5.0, 2.0)]))
    env = Environment(scenario(profiling_files))
    env.reset(seed=0)
    with pytest.raises(InputError, match=r"3 thresholds for 2 early exits; cut 7 is not one of 0\.\.3"):
        env.step(Action((0.1, 0.1, 0.1), 7, 1))
    with pytest.raises(InputError, match="interval 0"):
        env.step(Action((0.1, 0.1), 1, 0))
    with pytest.raises(InputError, match="cut 9"):
        env.run(fixed("bad", 9, [0.1, 0.1]))
