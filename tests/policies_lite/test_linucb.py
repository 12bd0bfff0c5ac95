"""The LinUCB-LMMSE learner: incremental updates equal the paper's batch formulas, the choice rule, the
weighting by delay, and its saved state (round trip, corruption, SIGKILL mid-save)."""
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edgesplit.policies_lite import PolicyError
from edgesplit.policies_lite.linucb import LinUCB, LinUCBConfig
from edgesplit.policies_lite.linucb_state import load_state, save_state
from support.linucb_writer import feedback_sequence

WRITER = Path(__file__).resolve().parents[1] / "support" / "linucb_writer.py"


def batch_estimate(config, feedback):
    """Eq. (6)/(7) with the full X (d x n) and diagonal C_n, as the paper writes them."""
    X = np.array([x for x, _, _ in feedback]).T
    y = np.array([r for _, r, _ in feedback])
    c_inv = np.diag([1.0 / (config.lambda_eta + config.lambda_v_scale / d ** config.lambda_v_power)
                     for _, _, d in feedback])
    c_e = np.linalg.inv(config.delta * np.eye(config.dim) + X @ c_inv @ X.T)
    return c_e @ X @ c_inv @ y, c_e


def test_incremental_updates_equal_the_batch_lmmse_estimate():
    config = LinUCBConfig(dim=4)
    learner = LinUCB(config)
    feedback = list(feedback_sequence(seed=1, count=500))
    for x, reward, delay in feedback:
        learner.update(x, reward, delay)
    theta, c_e = batch_estimate(config, feedback)
    np.testing.assert_allclose(learner.theta, theta, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(learner.covariance, c_e, rtol=1e-9, atol=1e-12)
    assert learner.n_feedback == 500


def test_a_late_feedback_weighs_more_than_an_early_one():
    """lambda_v shrinks with the delay: the same surprise moves theta more when it came late."""
    x = np.array([1.0, 0.0, 0.0, 0.0])
    early, late = LinUCB(LinUCBConfig(dim=4)), LinUCB(LinUCBConfig(dim=4))
    early.update(x, 1.0, delay=1)
    late.update(x, 1.0, delay=40)
    # weight 1/(0.4 + 5) vs 1/(0.4 + 5/1600): theta_0 = w / (delta + w)
    assert early.theta[0] == pytest.approx((1 / 5.4) / (0.1 + 1 / 5.4))
    assert late.theta[0] == pytest.approx((1 / 0.403125) / (0.1 + 1 / 0.403125))
    assert late.theta[0] > early.theta[0]


def test_choice_is_random_until_the_first_feedback_then_the_ucb_argmax():
    config = LinUCBConfig(dim=4)
    learner = LinUCB(config, seed=3)
    contexts = np.random.default_rng(0).random((10, 4))
    first = {learner.choose(contexts) for _ in range(200)}
    assert len(first) == 10, "Algorithm 1 plays uniformly at random before any feedback"
    for x, reward, delay in feedback_sequence(seed=2, count=30):
        learner.update(x, reward, delay)
    theta, c_e = learner.theta, learner.covariance
    ucb = [x @ theta + config.alpha * np.sqrt(x @ c_e @ x) for x in contexts]
    assert {learner.choose(contexts) for _ in range(20)} == {int(np.argmax(ucb))}
    mean, width = learner.upper_bounds(contexts)
    np.testing.assert_allclose(mean + config.alpha * width, ucb)


def test_choice_counts_per_label():
    learner = LinUCB(LinUCBConfig(dim=2), seed=0)
    labels = ["fp32", "int8"]
    for _ in range(5):
        learner.choose(np.eye(2), labels=labels)
    learner.update([1.0, 0.0], 0.5, delay=3, label="fp32")
    assert sum(learner.state.chosen.values()) == 5
    assert learner.state.rated == {"fp32": 1}


@pytest.mark.parametrize("bad", [{"dim": 0}, {"dim": 4, "delta": 0.0}, {"dim": 4, "alpha": float("nan")},
                                 {"dim": 4, "lambda_eta": -1.0}, {"dim": 4, "features": ("a",)}])
def test_bad_config_is_refused(bad):
    with pytest.raises(PolicyError, match="linucb"):
        LinUCBConfig(**bad)


def test_bad_input_is_refused():
    learner = LinUCB(LinUCBConfig(dim=3))
    with pytest.raises(PolicyError, match="contexts"):
        learner.choose(np.ones((4, 2)))
    with pytest.raises(PolicyError, match="finite"):
        learner.update([1.0, float("nan"), 0.0], 1.0, 2)
    with pytest.raises(PolicyError, match="delay"):
        learner.update([1.0, 0.0, 0.0], 1.0, -1)
    assert learner.n_feedback == 0


def _trained(count=200):
    learner = LinUCB(LinUCBConfig(dim=4, features=("a", "b", "c", "d")), seed=5)
    for i, (x, reward, delay) in enumerate(feedback_sequence(seed=4, count=count)):
        learner.update(x, reward, delay, label="arm%d" % (i % 3))
    return learner


def test_saved_state_restores_bit_exactly(tmp_path):
    learner = _trained()
    path = tmp_path / "learner.json"
    save_state(path, learner.state)
    restored = LinUCB(learner.config, load_state(path))
    assert np.array_equal(restored.theta, learner.theta)
    assert np.array_equal(restored.covariance, learner.covariance)
    assert restored.state.rated == learner.state.rated and restored.n_feedback == 200
    contexts = np.random.default_rng(9).random((10, 4))
    assert restored.choose(contexts) == learner.choose(contexts)
    assert [p.name for p in tmp_path.iterdir()] == ["learner.json"], "no temporary file left behind"


def _damage(path, how):
    raw = path.read_bytes()
    if how == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif how == "flipped-digit":
        doc = json.loads(raw)
        doc["b"][1] = doc["b"][1] + 1e-3
        path.write_text(json.dumps(doc))
    elif how == "zeroed":
        path.write_bytes(b"\0" * len(raw))
    elif how == "not-a-state":
        path.write_text('{"format": "something else"}')
    elif how == "empty":
        path.write_bytes(b"")


@pytest.mark.parametrize("how", ["truncated", "flipped-digit", "zeroed", "not-a-state", "empty"])
def test_a_damaged_state_file_is_a_clear_error(tmp_path, how):
    path = tmp_path / "learner.json"
    save_state(path, _trained().state)
    _damage(path, how)
    with pytest.raises(PolicyError, match=str(path)):
        load_state(path)


def test_a_consistent_but_forged_state_is_refused(tmp_path):
    """A covariance that is not the precision's inverse is refused even with a matching checksum."""
    import hashlib

    from edgesplit.policies_lite.linucb_state import _canonical, state_to_document

    doc = state_to_document(_trained().state)
    doc["covariance"][0][0] *= 2
    doc.pop("sha256")
    doc["sha256"] = hashlib.sha256(_canonical(doc)).hexdigest()
    path = tmp_path / "learner.json"
    path.write_bytes(_canonical(doc))
    with pytest.raises(PolicyError, match="not the inverse"):
        load_state(path)


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_state_survives_sigkill_mid_updates(tmp_path, seed):
    """A real process saves after every feedback; SIGKILL at an arbitrary moment leaves a state that
    loads and equals the replay of exactly the feedbacks it holds, at least as many as it reported."""
    path = tmp_path / "learner.json"
    writer = subprocess.Popen([sys.executable, str(WRITER), str(path), str(seed)], stdout=subprocess.PIPE,
                              text=True)
    try:
        reported = 0
        target = 20 + 17 * (seed - 10)
        while reported < target:
            line = writer.stdout.readline()
            assert line, "the writer exited early (rc %s)" % writer.poll()
            reported = int(line)
        # Let it run on for a little while so the kill lands at an arbitrary point of a save.
        time.sleep(0.01 * (seed - 10))
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=10)
        for line in writer.stdout:
            reported = max(reported, int(line))
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
        writer.stdout.close()
    assert writer.returncode == -signal.SIGKILL
    state = load_state(path)
    assert state.n_feedback >= reported
    replayed = LinUCB(state.config)
    for i, (x, reward, delay) in enumerate(feedback_sequence(seed, count=state.n_feedback)):
        replayed.update(x, reward, delay, label="arm%d" % (delay % 3))
    restored = LinUCB(state.config, state)
    np.testing.assert_array_equal(restored.theta, replayed.theta)
    assert restored.state.rated == replayed.state.rated
