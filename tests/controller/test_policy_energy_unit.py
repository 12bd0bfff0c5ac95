"""A policy's energy input has a unit: one built for another unit than the session's is refused."""
import subprocess
import sys

import pytest

from edgesplit.runtime.bundle.store import load_bundle
from edgesplit.runtime.default_bundle import DEMO_POLICY_FILE as POLICY_FILE
from edgesplit.runtime.controller.strategies import EnergyInput, PolicyLoadError, load_policy_strategy
from edgesplit.runtime.default_bundle import default_bundle_path


def _shape():
    bundle = load_bundle(default_bundle_path())
    return len([e for e in bundle.manifest.exits if e.head is not None]), len(bundle.manifest.cuts)


def test_a_policy_built_in_mj_is_refused_where_energy_is_a_frequency():
    n_side, n_cuts = _shape()
    with pytest.raises(PolicyLoadError) as caught:
        load_policy_strategy(POLICY_FILE, n_side, n_cuts, energy=EnergyInput("cpu_freq", "MHz", "board x86_cpu"))
    message = str(caught.value)
    assert "mJ" in message and "MHz" in message and "cpu_freq" in message and "x86_cpu" in message
    assert str(POLICY_FILE) in message


def test_the_same_unit_loads():
    n_side, n_cuts = _shape()
    strategy = load_policy_strategy(POLICY_FILE, n_side, n_cuts, energy=EnergyInput("emulated", "mJ", "emulated board"))
    assert strategy.policy.provenance["energy_unit"] == "mJ"


def test_serve_check_config_refuses_the_mismatch(tmp_path):
    config = tmp_path / "edgesplit.toml"
    config.write_text('[model]\nboard = "x86_cpu"\npolicy = "%s"\n' % POLICY_FILE)
    done = subprocess.run([sys.executable, "-m", "edgesplit.runtime.cli", "serve", "--config", str(config),
                           "--check-config"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "mJ" in done.stderr and "MHz" in done.stderr and "cpu_freq" in done.stderr


def test_a_policy_for_another_bundle_with_the_same_exits_is_loaded_with_a_warning(tmp_path, caplog):
    # The same exit and cut counts let it load (a re-exported model changes the hash too), but its thresholds were
    # chosen for another model's exits: say so, naming both bundles.
    import logging

    import numpy as np

    from edgesplit.policies_lite import edgeml_decoder, save_policy
    from edgesplit.runtime.bundle.store import load_bundle
    from edgesplit.runtime.controller.strategies import load_policy_strategy
    from edgesplit.runtime.default_bundle import default_bundle_path

    bundle = load_bundle(default_bundle_path())
    other = tmp_path / "other.npz"
    save_policy(other, features=["bandwidth_mbps"], layers=[(np.zeros((4, 1)), np.zeros(4))], activations=["identity"],
                decoder=edgeml_decoder(2, 4), mean=[0.0], std=[1.0],
                provenance={"traces": [], "bundle": "resnet-other", "bundle_sha256": "ab" * 32})
    with caplog.at_level(logging.WARNING):
        load_policy_strategy(other, 2, 4, bundle=bundle)
    assert "built for bundle resnet-other (sha256 abababababab...), this one is %s" % bundle.manifest.name in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        load_policy_strategy(POLICY_FILE, 2, 4, bundle=bundle)  # the demo's policy, built for this bundle
    assert "built for bundle" not in caplog.text


def test_a_policy_for_another_board_is_loaded_with_a_warning(caplog):
    # Its segment times and energy were that board's: say so when the board it runs on is known.
    import logging

    from edgesplit.runtime.controller.strategies import load_policy_strategy

    with caplog.at_level(logging.WARNING):
        load_policy_strategy(POLICY_FILE, 2, 4, board_name="rpi4")
    assert "built for board jetson_nano_cpu, it runs on board rpi4" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        load_policy_strategy(POLICY_FILE, 2, 4, board_name="jetson_nano_cpu")
        load_policy_strategy(POLICY_FILE, 2, 4)  # the board unknown: nothing to compare
    assert "built for board" not in caplog.text
