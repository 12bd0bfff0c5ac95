"""DDPG (codegen/learning/ddpg.py): its parts, that it learns, and that the frozen actor is the torch actor.

The mechanics tests use a tiny contextual task written here (the one fake: it stands in for nothing
the product has, it only gives the agent a problem with a known answer); the export round-trip runs
the real learning environment.
"""
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.workstation

from edgesplit.codegen.learning.ddpg import (DDPG, ActionCodec, Args, OrnsteinUhlenbeck, ReplayBuffer,  # noqa: E402
                                             fit_normalisation, state_vector, train)
from edgesplit.codegen.learning.environment import Step  # noqa: E402
from edgesplit.runtime.controller.state import EDGEML_FEATURES as FEATURES  # noqa: E402  (what DDPG reads)
from edgesplit.runtime.controller.strategies import Action, load_policy_strategy  # noqa: E402


class CutByBandwidth:
    """One task per step; the state's bandwidth is 1 or 9 Mbit/s at random. Reward 1 for the right cut
    (0 on the fast link, the last on the slow one), 0 otherwise."""

    features = tuple(FEATURES)
    n_exits = 1
    n_cuts = 3

    def __init__(self, seed=0):
        self.rng = np.random.default_rng(seed)

    def _state(self):
        self.fast = bool(self.rng.random() < 0.5)
        return {"latency_mean_s": 0.05, "energy_mean": 100.0, "bandwidth_mbps": 9.0 if self.fast else 1.0,
                "peer_alive": 1.0}

    def reset(self, seed=None, recording=None, start_s=None):
        self.t = 0
        return self._state()

    def step(self, action):
        right = action.cut == (0 if self.fast else self.n_cuts - 1)
        self.t += 1
        return Step(self._state(), 1.0 if right else 0.0, self.t >= 200,
                    {"tasks": self.t, "sr": 0.0, "accuracy": 0.0, "latency_s": 0.0})


def test_ou_noise_is_mean_reverting_and_correlated():
    rng = np.random.default_rng(0)
    quiet = OrnsteinUhlenbeck(3, theta=0.15, sigma=0.0, rng=rng)
    quiet.x = np.ones(3)
    for _ in range(100):
        quiet.sample()
    assert np.all(np.abs(quiet.x) < 1e-6)  # no noise: decays to 0
    noise = OrnsteinUhlenbeck(1, theta=0.15, sigma=0.3, rng=rng)
    xs = np.array([noise.sample()[0] for _ in range(5000)])
    lag1 = np.corrcoef(xs[:-1], xs[1:])[0, 1]
    assert lag1 > 0.7  # temporally correlated, unlike white noise (about 0)
    assert abs(xs.mean()) < 0.3
    noise.reset()
    assert np.all(noise.x == 0)


def test_replay_buffer_is_a_ring():
    buffer = ReplayBuffer(3, n_features=2, n_actions=1)
    for i in range(5):
        buffer.add(np.array([i, i]), np.array([i / 10]), float(i), np.array([i + 1, i + 1]))
    assert buffer.size == 3
    assert sorted(buffer.reward.tolist()) == [2.0, 3.0, 4.0]  # the two oldest were overwritten
    s, a, r, s2 = buffer.sample(np.random.default_rng(0), 50)
    assert set(r.tolist()) <= {2.0, 3.0, 4.0}
    assert np.all(s2[:, 0] == s[:, 0] + 1)


def test_action_codec_round_trips_every_cut_and_interval():
    codec = ActionCodec(n_exits=2, n_cuts=4, max_interval=5)
    for cut in range(4):
        for interval in range(1, 6):
            action = Action((0.25, 0.75), cut, interval, True)
            assert codec.decode(codec.encode(action)) == action
    # Neurosurgeon-style actions (no exits) are thresholds 0: no entropy is below them.
    assert codec.decode(codec.encode(Action((0.4, 0.4), 1, 2, False))) == Action((0.0, 0.0), 1, 2, True)
    # The extremes floor and clip as EdgeML does: 1.0 is the last cut and the longest interval.
    assert codec.decode(np.array([0.0, 1.0, 1.0, 1.0])) == Action((0.0, 1.0), 3, 5, True)
    assert codec.decode(np.array([0.0, 1.0, 0.0, 0.0])) == Action((0.0, 1.0), 0, 1, True)


def test_constant_feature_gets_std_one():
    states = np.array([[0.1, 1.0], [0.3, 1.0], [0.2, 1.0]])
    mean, std = fit_normalisation(states)
    assert mean[1] == 1.0 and std[1] == 1.0 and std[0] > 0


def test_soft_update_moves_targets_by_tau():
    codec = ActionCodec(1, 3, 5)
    agent = DDPG(4, codec, Args(batch_size=4, tau=0.25))
    rng = np.random.default_rng(0)
    for _ in range(8):
        agent.buffer.add(rng.random(4), rng.random(3), 1.0, rng.random(4))
    before = [p.detach().clone() for p in agent.actor_target.parameters()]
    agent.update()
    for old, target, online in zip(before, agent.actor_target.parameters(), agent.actor.parameters()):
        assert torch.allclose(target, 0.75 * old + 0.25 * online.detach(), atol=1e-6)
    assert not all(torch.equal(o, t) for o, t in zip(before, agent.actor_target.parameters()))


def test_ddpg_learns_the_cut_from_the_bandwidth():
    env = CutByBandwidth(seed=0)
    args = Args(seed=0, epochs=1500, warmup_epochs=100, ou_sigma=0.2, gamma=0.0, select_every=0)
    result = train(env, args)
    late = np.array(result.log.reward[-300:])
    early = np.array(result.log.reward[:100])  # random actions: right about 1 time in 3
    assert late.mean() > 0.9 > early.mean() + 0.3
    agent = result.agent
    fast = state_vector({"latency_mean_s": 0.05, "energy_mean": 100.0, "bandwidth_mbps": 9.0, "peer_alive": 1.0},
                        FEATURES)
    slow = fast.copy()
    slow[2] = 1.0
    assert agent.codec.decode(agent.act(fast, explore=False)).cut == 0
    assert agent.codec.decode(agent.act(slow, explore=False)).cut == 2


def test_features_the_environment_lacks_are_refused():
    with pytest.raises(ValueError, match="gpu_temperature"):
        train(CutByBandwidth(), Args(epochs=2, features=tuple(FEATURES) + ("gpu_temperature",)))


def test_selection_keeps_the_best_validated_actor_and_leaves_training_alone(demo_env):
    from edgesplit.codegen.learning.ddpg import Validator

    args = Args(seed=1, epochs=160, warmup_epochs=50, select_every=20, select_episodes=2)
    chosen = train(demo_env.clone(), args)
    picked = chosen.selection
    assert picked.checks == 6  # after epochs 70, 90, 110, 130 and 150, and the last actor
    assert picked.epoch is not None and 0.0 <= picked.sr <= 1.0
    # The kept actor is the one validated: re-running the same validation episodes gives the same figures.
    again = Validator(demo_env.clone(), args)
    again.check(chosen.agent, 0)
    assert (again.best.sr, again.best.accuracy) == (picked.sr, picked.accuracy)
    # Selection only reads a clone: the training run itself (its actions and rewards) is the same without it.
    last = train(demo_env.clone(), Args(seed=1, epochs=160, warmup_epochs=50, select_every=0))
    assert last.selection.epoch is None
    assert last.log.reward == chosen.log.reward


@pytest.fixture(scope="module")
def demo_env():
    from edgesplit.codegen.learning.environment import Environment, demo_scenario

    return Environment(demo_scenario(), seed=0)


def test_frozen_actor_decides_what_the_torch_actor_decides(demo_env, tmp_path):
    result = train(demo_env, Args(seed=3, epochs=150, warmup_epochs=50))
    agent = result.agent
    path = tmp_path / "actor.npz"
    policy_id = agent.export(path, FEATURES, {"algorithm": "ddpg", "traces": ["norway_car_3"]})
    strategy = load_policy_strategy(path, demo_env.n_exits, demo_env.n_cuts)
    assert strategy.policy_id == policy_id
    assert strategy.policy.provenance["algorithm"] == "ddpg"
    # The training states (what the board will see) and states far outside them.
    rng = np.random.default_rng(1)
    states = np.concatenate([result.logged.state,
                             result.logged.state * rng.uniform(0.2, 3.0, size=result.logged.state.shape)])
    states[:, 3] = rng.integers(0, 2, size=len(states))
    for x in states:
        torch_action = agent.codec.decode(agent.act(x, explore=False))
        board_action = strategy.decide(dict(zip(FEATURES, x.tolist())))
        assert (board_action.cut, board_action.interval) == (torch_action.cut, torch_action.interval)
        assert np.allclose(board_action.thresholds, torch_action.thresholds, atol=1e-5)
    assert math.isfinite(result.tasks / result.seconds)


def test_restarts_keep_the_run_that_validated_best(demo_env):
    runs = [train(demo_env.clone(), Args(seed=2 + 1000 * r, epochs=120, warmup_epochs=50, select_every=35,
                                         select_episodes=1)) for r in range(2)]
    both = train(demo_env.clone(), Args(seed=2, epochs=120, warmup_epochs=50, select_every=35, select_episodes=1,
                                        restarts=2))
    scores = [(run.selection.sr, run.selection.accuracy) for run in runs]
    best = scores.index(max(scores))
    assert both.selection.restart == best
    assert (both.selection.sr, both.selection.accuracy) == scores[best]
    assert both.tasks == sum(run.tasks for run in runs)
    with pytest.raises(ValueError, match="select_every"):
        train(demo_env.clone(), Args(epochs=10, restarts=2, select_every=0))


def test_export_names_the_features_the_actor_reads(tmp_path):
    from edgesplit.runtime.controller.state import FEATURES as ALL  # five: EdgeML's four and remote_share

    result = train(CutByBandwidth(), Args(seed=0, epochs=20, warmup_epochs=5, select_every=0))
    with pytest.raises(ValueError, match="the actor reads 4 state features, 5 names given"):
        result.agent.export(tmp_path / "p.npz", ALL, {"algorithm": "ddpg"})
    assert not (tmp_path / "p.npz").exists()
