import numpy as np
import pytest

from edgesplit.policies_lite import edgeml_decoder, save_policy
from support.plite_factory import FEATURES, mlp_layers


@pytest.fixture
def rng():
    return np.random.default_rng(7)


@pytest.fixture
def mlp_file(tmp_path, rng):
    """An 8-64-64-5 tanh MLP with an EdgeML decoder (3 exits, 4 cuts); returns (path, layers, mean, std)."""
    layers = mlp_layers(rng, [8, 64, 64, 5])
    mean, std = rng.standard_normal(8), rng.random(8) + 0.5
    path = tmp_path / "mlp.npz"
    save_policy(path, features=FEATURES, layers=layers, activations=["tanh", "tanh", "identity"],
                decoder=edgeml_decoder(3, 4), mean=mean, std=std,
                provenance={"traces": ["run1.db"], "algorithm": "ddpg", "date": "2024-01-01T00:00:00+00:00"})
    return path, layers, mean, std
