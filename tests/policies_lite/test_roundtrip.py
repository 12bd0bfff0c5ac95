"""save_policy -> load_policy round trips and the numbers the policy computes."""
import math

import numpy as np
import pytest

from edgesplit.policies_lite import (EdgeMLAction, PolicyError, TaskChoice, edgeml_decoder, features_vector, load_policy,
                           read_policy_file, save_policy, task_choice_decoder)
from support.plite_factory import FEATURES, mlp_layers

ACTS = {"tanh": np.tanh, "relu": lambda v: np.maximum(v, 0), "identity": lambda v: v,
        "sigmoid": lambda v: 1 / (1 + np.exp(-v))}


def reference_forward(layers, activations, mean, std, x):
    h = (np.asarray(x, float) - mean) / std
    for (w, b), act in zip(layers, activations):
        h = ACTS[act](np.asarray(w, float) @ h + np.asarray(b, float))
    return h


def test_mlp_round_trip_matches_reference(mlp_file, rng):
    path, layers, mean, std = mlp_file
    policy = load_policy(path, available_features=FEATURES + ["extra"])
    assert policy.kind == "mlp" and policy.features == tuple(FEATURES)
    assert policy.provenance["algorithm"] == "ddpg" and policy.provenance["traces"] == ["run1.db"]
    for _ in range(20):
        x = rng.standard_normal(8) * 3
        expected = reference_forward(layers, ["tanh", "tanh", "identity"], mean, std, x)
        np.testing.assert_allclose(policy.evaluate(x), expected, rtol=1e-9, atol=1e-9)


def test_edgeml_decoding_floors_and_clips(mlp_file, rng):
    path, layers, mean, std = mlp_file
    policy = load_policy(path)
    for _ in range(50):
        x = rng.standard_normal(8) * 5
        out = reference_forward(layers, ["tanh", "tanh", "identity"], mean, std, x)
        action = policy.decide(x)
        assert isinstance(action, EdgeMLAction)
        np.testing.assert_allclose(action.thresholds, 1 / (1 + np.exp(-out[:3])), rtol=1e-9)
        assert all(0.0 <= t <= 1.0 for t in action.thresholds)
        assert action.cut == min(max(math.floor(out[3]), 0), 3)
        assert action.interval == min(max(math.floor(out[4]), 1), 5)
        assert isinstance(action.cut, int) and isinstance(action.interval, int)


def test_policy_id_is_stable_and_content_based(tmp_path, rng):
    layers = mlp_layers(rng, [8, 5])
    kwargs = dict(features=FEATURES, layers=layers, activations=["identity"], decoder=edgeml_decoder(3, 2),
                  provenance={"traces": [], "algorithm": "fit", "date": "2024-01-01"})
    first = save_policy(tmp_path / "a.npz", **kwargs)
    second = save_policy(tmp_path / "b.npz", **kwargs)
    assert first == second == load_policy(tmp_path / "a.npz").policy_id
    assert len(first) == 64
    layers[0][0][0, 0] += 1.0
    assert save_policy(tmp_path / "c.npz", **kwargs) != first


def test_linear_policy_is_normalise_then_dot(tmp_path, rng):
    w, b = rng.standard_normal((5, 8)), rng.standard_normal(5)
    mean, std = rng.standard_normal(8), rng.random(8) + 0.1
    save_policy(tmp_path / "lin.npz", features=FEATURES, layers=[(w, b)], activations=["identity"],
                decoder=edgeml_decoder(3, 4, thresholds="clip", scale="unit"), mean=mean, std=std)
    policy = load_policy(tmp_path / "lin.npz")
    assert policy.kind == "linear"
    x = rng.standard_normal(8)
    out = w @ ((x - mean) / std) + b
    np.testing.assert_allclose(policy.evaluate(x), out, rtol=1e-9, atol=1e-12)
    action = policy.decide(x)
    np.testing.assert_allclose(action.thresholds, np.clip(out[:3], 0, 1), rtol=1e-9, atol=1e-12)
    assert action.cut == min(max(math.floor(out[3] * 4), 0), 3)
    assert action.interval == min(max(math.floor(1 + out[4] * 5), 1), 5)


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh", "identity"])
def test_every_activation(tmp_path, rng, activation):
    layers = mlp_layers(rng, [8, 16, 4])
    save_policy(tmp_path / "p.npz", features=FEATURES, layers=layers, activations=[activation, "identity"],
                decoder=task_choice_decoder([(0, None), (1, 0), (2, 1), (3, 2)]))
    policy = load_policy(tmp_path / "p.npz")
    x = rng.standard_normal(8)
    out = reference_forward(layers, [activation, "identity"], np.zeros(8), np.ones(8), x)
    np.testing.assert_allclose(policy.evaluate(x), out, rtol=1e-9, atol=1e-12)


def test_task_choice_is_argmax(tmp_path, rng):
    choices = [(1, None), (1, 0), (2, 0), (2, 1), (3, 2)]
    layers = mlp_layers(rng, [8, 20, 20, 5])
    save_policy(tmp_path / "ddqn.npz", features=FEATURES, layers=layers, activations=["tanh", "tanh", "identity"],
                decoder=task_choice_decoder(choices), provenance={"traces": [], "algorithm": "ddqn"})
    policy = load_policy(tmp_path / "ddqn.npz")
    seen = set()
    for _ in range(200):
        x = rng.standard_normal(8) * 4
        out = reference_forward(layers, ["tanh", "tanh", "identity"], np.zeros(8), np.ones(8), x)
        choice = policy.decide(x)
        assert choice == TaskChoice(*choices[int(np.argmax(out))])
        seen.add((choice.exit, choice.cut))
    assert len(seen) > 1


def test_features_vector_orders_and_checks(mlp_file):
    policy = load_policy(mlp_file[0])
    measurements = {name: float(i) for i, name in enumerate(reversed(FEATURES))}
    vec = policy.features_vector(measurements)
    assert vec.tolist() == [measurements[n] for n in FEATURES]
    assert policy.decide_from(measurements) == policy.decide(vec)
    del measurements["rtt_s"], measurements["queue_len"]
    with pytest.raises(PolicyError, match="rtt_s, queue_len"):
        policy.features_vector(measurements)
    with pytest.raises(PolicyError, match="'a'.*finite"):
        features_vector(["a"], {"a": float("nan")})
    with pytest.raises(PolicyError, match="'a'.*number"):
        features_vector(["a"], {"a": "fast"})


def test_missing_features_are_refused_by_name(mlp_file):
    with pytest.raises(PolicyError, match="cannot supply feature\\(s\\) gpu_freq_hz, temperature_c"):
        load_policy(mlp_file[0], available_features=[f for f in FEATURES if f not in ("gpu_freq_hz", "temperature_c")])


def test_bad_inputs_at_decision_time(mlp_file):
    policy = load_policy(mlp_file[0])
    with pytest.raises(PolicyError, match="shape \\(7,\\)"):
        policy.decide(np.zeros(7))
    with pytest.raises(PolicyError, match="not finite"):
        policy.decide(np.full(8, np.nan))
    assert isinstance(policy.decide([0.0] * 8), EdgeMLAction)  # lists and float32 are converted
    assert policy.decide(np.zeros(8, np.float32)) == policy.decide(np.zeros(8))


def test_writer_refuses_what_the_loader_would(tmp_path, rng):
    layers = mlp_layers(rng, [8, 4, 5])
    with pytest.raises(PolicyError, match="activations\\[0\\].*swish"):
        save_policy(tmp_path / "x.npz", features=FEATURES, layers=layers, activations=["swish", "identity"],
                    decoder=edgeml_decoder(3, 4))
    with pytest.raises(PolicyError, match="layer_sizes\\[-1\\].*reads 6"):
        save_policy(tmp_path / "x.npz", features=FEATURES, layers=layers, activations=["tanh", "identity"],
                    decoder=edgeml_decoder(4, 4))
    with pytest.raises(PolicyError, match="W1.*shape"):
        save_policy(tmp_path / "x.npz", features=FEATURES, layers=[layers[0], (np.zeros((5, 3)), np.zeros(5))],
                    activations=["tanh", "identity"], decoder=edgeml_decoder(3, 4))
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_read_policy_file_returns_spec_and_weights(mlp_file):
    spec, arrays = read_policy_file(mlp_file[0])
    assert sorted(arrays) == ["W0", "W1", "W2", "b0", "b1", "b2"]
    assert spec.layer_sizes == (8, 64, 64, 5)
