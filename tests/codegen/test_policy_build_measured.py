"""build-policy's cost model plans from a measured profile (``--measured-profile``) when given one."""
import shutil

import pytest

pytestmark = pytest.mark.workstation


@pytest.fixture(scope="module")
def profiled(tmp_path_factory):
    from edgesplit.runtime.bundle.store import load_bundle
    from edgesplit.runtime.default_bundle import default_bundle_path
    from edgesplit.runtime.profiling.measure import profile_bundle
    from edgesplit.runtime.profiling.store import save_profile
    from edgesplit.runtime.segments.registry import open_runner

    root = tmp_path_factory.mktemp("measured") / "bundle"
    shutil.copytree(str(default_bundle_path()), str(root))
    bundle = load_bundle(root)
    save_profile(bundle, profile_bundle(bundle, "x86_cpu", open_runner, warmup=1, repeats=3))
    return bundle


def test_the_cost_model_uses_the_measured_medians(profiled):
    from edgesplit.codegen.policy_build import cost_model
    from edgesplit.runtime.emulation.board import load_emulated_board
    from edgesplit.runtime.profiling.store import load_profile as load_measured_profile

    measured = load_measured_profile(profiled, "x86_cpu")
    median_s = {s["id"]: s["median_ms"] / 1e3 for s in measured["segments"]}
    manifest = profiled.manifest
    side = [e for e in manifest.exits if e.head is not None]
    cost = cost_model(profiled, "jetson_nano_cpu", 3.0, 0.02, measured=measured)
    assert cost.main_s == pytest.approx([median_s[s.id] * 3.0 for s in manifest.main])
    assert cost.head_s == pytest.approx([median_s[e.head] * 3.0 for e in side])

    board = load_emulated_board("jetson_nano_cpu")
    macs = cost_model(profiled, "jetson_nano_cpu", 3.0, 0.02)  # the documented MACs model, unchanged by default
    assert macs.main_s == pytest.approx([board.compute_s(s.macs, 3.0) for s in manifest.main])
    assert macs.main_s != pytest.approx(cost.main_s)
    # The energy model is the emulated board's either way.
    assert cost.energy(1.0, 0.0) == pytest.approx(macs.energy(1.0, 0.0))


def test_the_command_offers_measured_profile():
    import argparse

    from edgesplit.codegen.policy_build_command import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["build-policy", "--out", "p.npz", "--measured-profile", "x86_cpu"])
    assert args.measured_profile == "x86_cpu"
    assert parser.parse_args(["build-policy", "--out", "p.npz"]).measured_profile is None
