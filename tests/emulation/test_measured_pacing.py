"""Pacing from a measured profile: each segment takes its profiled median x workload scale (emulated seconds)."""
import copy
import json
import logging
import shutil

import numpy as np
import pytest

from edgesplit.runtime.bundle.store import load_bundle
from edgesplit.runtime.cli import main
from edgesplit.runtime.default_bundle import default_bundle_path
from edgesplit.runtime.emulation import Emulation, load_emulated_board
from edgesplit.runtime.profiling.measure import profile_bundle
from edgesplit.runtime.profiling.schema import ProfileError
from edgesplit.runtime.profiling.store import load_profile as load_measured_profile
from edgesplit.runtime.profiling.store import profile_path, save_profile
from edgesplit.runtime.segments.registry import open_runner

SCALE = 7.0


@pytest.fixture(scope="module")
def profiled(tmp_path_factory):
    """A copy of the embedded bundle with profiles/x86_cpu.json measured here (few repeats)."""
    root = tmp_path_factory.mktemp("measured") / "bundle"
    shutil.copytree(str(default_bundle_path()), str(root))
    bundle = load_bundle(root)
    save_profile(bundle, profile_bundle(bundle, "x86_cpu", open_runner, warmup=1, repeats=3))
    return root


def test_every_segment_is_paced_to_its_measured_median_times_the_scale(profiled):
    bundle = load_bundle(profiled)
    measured = load_measured_profile(bundle, "x86_cpu")
    median_s = {s["id"]: s["median_ms"] / 1e3 for s in measured["segments"]}
    emulation = Emulation(load_emulated_board("jetson_nano_cpu"), workload_scale=SCALE, measured=measured)
    factory = emulation.runner_factory()
    for seg in bundle.manifest.segments:  # main pieces and exit heads
        runner = factory(seg, bundle.path_of(seg.id))
        assert runner.emulated_s == pytest.approx(median_s[seg.id] * SCALE)
        assert emulation.segment_seconds(seg.macs, seg.id) == pytest.approx(median_s[seg.id] * SCALE)
        # ... and not the MACs model, which would give something else entirely.
        assert runner.emulated_s != pytest.approx(emulation.profile.compute_s(seg.macs, SCALE))
    described = emulation.describe()
    assert emulation.label == described["label"] == "emulated (measured profile x86_cpu)"
    assert described["measured_profile"]["bundle_sha256"] == bundle.hash
    assert described["board"]["name"] == "jetson_nano_cpu"  # still the energy model


def test_without_a_measured_profile_the_macs_model_paces_as_before():
    board = load_emulated_board("jetson_nano_cpu")
    emulation = Emulation(board, workload_scale=SCALE)
    assert emulation.segment_seconds(1e6, "seg0") == pytest.approx(board.compute_s(1e6, SCALE))
    assert emulation.label == "jetson_nano_cpu (emulated)"
    assert "MACs x workload_scale" in emulation.describe()["compute_model"]


def test_a_segment_the_profile_lacks_falls_back_to_macs_logged_once(profiled, caplog):
    bundle = load_bundle(profiled)
    measured = copy.deepcopy(load_measured_profile(bundle, "x86_cpu"))
    missing = measured["segments"].pop()["id"]
    seg = bundle.manifest.segment(missing)
    emulation = Emulation(load_emulated_board("rpi4"), workload_scale=SCALE, measured=measured)
    with caplog.at_level(logging.WARNING, logger="edgesplit.runtime.emulation.segment_times"):
        first = emulation.segment_seconds(seg.macs, missing)
        emulation.segment_seconds(seg.macs, missing)
    assert first == pytest.approx(load_emulated_board("rpi4").compute_s(seg.macs, SCALE))
    warnings = [r.getMessage() for r in caplog.records if missing in r.getMessage()]
    assert len(warnings) == 1 and "MACs model" in warnings[0]


def test_edgesplit_run_paces_from_the_measured_profile_and_labels_it(profiled, tmp_path, capsys):
    inputs = tmp_path / "x.npy"
    np.save(str(inputs), np.zeros((2, 1, 28, 28), dtype=np.float32))
    assert main(["run", str(profiled), "--inputs", str(inputs), "--board", "jetson_nano_cpu",
                 "--measured-profile", "x86_cpu", "--speedup", "4", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["emulation"]["label"] == "emulated (measured profile x86_cpu)"
    assert report["emulation"]["measured_profile"]["board"] == "x86_cpu"
    assert main(["run", str(profiled), "--inputs", str(inputs), "--board", "jetson_nano_cpu",
                 "--measured-profile", "x86_cpu", "--speedup", "4"]) == 0
    assert "(emulated (measured profile x86_cpu); energy model of board jetson_nano_cpu)" in capsys.readouterr().out


def test_a_profile_of_another_bundle_version_is_refused_by_edgesplit_run(profiled, tmp_path, capsys):
    stale_root = tmp_path / "stale"
    shutil.copytree(str(profiled), str(stale_root))
    path = profile_path(stale_root, "x86_cpu")
    stale = json.loads(path.read_text())
    stale["bundle_sha256"] = "0" * 64
    path.write_text(json.dumps(stale))
    with pytest.raises(ProfileError, match="the bundle changed since it was profiled"):
        load_measured_profile(load_bundle(stale_root), "x86_cpu")
    inputs = tmp_path / "x.npy"
    np.save(str(inputs), np.zeros((1, 1, 28, 28), dtype=np.float32))
    assert main(["run", str(stale_root), "--inputs", str(inputs), "--board", "jetson_nano_cpu",
                 "--measured-profile", "x86_cpu"]) == 1
    err = capsys.readouterr().err
    assert "x86_cpu.json" in err and "run 'edgesplit profile %s --board x86_cpu' again" % stale_root in err


def test_measured_profile_needs_a_board_for_the_energy_model(profiled, tmp_path, capsys):
    inputs = tmp_path / "x.npy"
    np.save(str(inputs), np.zeros((1, 1, 28, 28), dtype=np.float32))
    assert main(["run", str(profiled), "--inputs", str(inputs), "--measured-profile", "x86_cpu"]) == 1
    assert "--measured-profile need --board" in capsys.readouterr().err
