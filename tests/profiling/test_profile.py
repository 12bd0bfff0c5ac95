"""``edgesplit profile`` times every segment, stores profiles/<board>.json in the bundle, loads it back."""
import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support import fake_boards
from edgesplit.runtime.bundle.store import load_bundle
from edgesplit.runtime.cli import main
from edgesplit.runtime.default_bundle import default_bundle_path
from edgesplit.runtime.profiling.measure import profile_bundle, summarise
from edgesplit.runtime.profiling.schema import ProfileError, validate_profile
from edgesplit.runtime.profiling.store import list_profiles, load_profile, profile_path, save_profile
from edgesplit.runtime.segments.registry import open_runner

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def measured():
    return profile_bundle(load_bundle(default_bundle_path()), "x86_cpu", open_runner, warmup=1, repeats=3)


def test_the_cli_profiles_and_stores_without_changing_the_bundle_hash(bundle_dir, capsys):
    before = load_bundle(bundle_dir)
    manifest_bytes = (bundle_dir / "manifest.json").read_bytes()
    assert main(["profile", str(bundle_dir), "--board", "x86_cpu", "--repeats", "3", "--warmup", "1", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    after = load_bundle(bundle_dir)  # still verifies: profiles/ is not part of the manifest
    assert after.hash == before.hash and (bundle_dir / "manifest.json").read_bytes() == manifest_bytes
    stored = load_profile(after, "x86_cpu")
    assert stored == printed
    assert list_profiles(bundle_dir) == ["x86_cpu"]
    assert [p.name for p in (bundle_dir / "profiles").iterdir()] == ["x86_cpu.json"]  # no temporary left over


def test_every_segment_and_cut_is_measured(measured):
    bundle = load_bundle(default_bundle_path())
    assert [s["id"] for s in measured["segments"]] == [s.id for s in bundle.manifest.segments]
    for seg in measured["segments"]:
        assert 0 < seg["min_ms"] <= seg["median_ms"] <= seg["p90_ms"] <= seg["max_ms"]
        assert seg["provider"] == "CPUExecutionProvider"
    assert [c["bytes_per_sample"] for c in measured["cuts"]] == [c.bytes_per_sample for c in bundle.manifest.cuts]
    assert measured["cuts"][0]["main_median_ms_before"] == 0.0
    assert measured["cuts"][-1]["main_median_ms_after"] == 0.0
    assert measured["settings"]["repeats"] == 3 and measured["bundle_sha256"] == bundle.hash


def test_summary_statistics():
    stats = summarise([0.001 * v for v in range(1, 11)])
    assert stats == {"median_ms": 5.5, "p90_ms": 9.1, "mean_ms": 5.5, "min_ms": 1.0, "max_ms": 10.0}


def test_a_profile_of_another_bundle_version_is_refused(bundle_dir, measured):
    bundle = load_bundle(bundle_dir)
    save_profile(bundle, measured)
    stale = copy.deepcopy(measured)
    stale["bundle_sha256"] = "0" * 64
    profile_path(bundle_dir, "x86_cpu").write_text(json.dumps(stale))
    with pytest.raises(ProfileError, match="the bundle changed since it was profiled; run 'edgesplit profile"):
        load_profile(bundle, "x86_cpu")


@pytest.mark.parametrize("mutate, message", [
    (lambda p: p.update(extra=1), "unknown field 'extra'"),
    (lambda p: p["segments"][1].pop("p90_ms"), r"segments\[1\]: missing field 'p90_ms'"),
    (lambda p: p["segments"][0].update(median_ms=-1), r"segments\[0\].median_ms: expected a number >= 0"),
    (lambda p: p["cuts"][2].update(id=5), r"cuts\[2\].id: expected 2"),
    (lambda p: p["settings"].update(repeats=0), "settings.repeats: expected an integer >= 1"),
    (lambda p: p.update(format_version=2), "this runtime reads version 1"),
])
def test_malformed_profiles_name_the_field(measured, mutate, message):
    bad = copy.deepcopy(measured)
    mutate(bad)
    with pytest.raises(ProfileError, match=message):
        validate_profile(bad, "p.json")


def test_a_missing_or_broken_profile_says_what_to_run(bundle_dir):
    bundle = load_bundle(bundle_dir)
    with pytest.raises(ProfileError, match="no profile for board rpi4; measure one with 'edgesplit profile"):
        load_profile(bundle, "rpi4")
    path = profile_path(bundle_dir, "rpi4")
    path.parent.mkdir()
    path.write_text("{not json")
    with pytest.raises(ProfileError, match="not valid JSON"):
        load_profile(bundle, "rpi4")
    with pytest.raises(ProfileError, match="cannot name a profile file"):
        profile_path(bundle_dir, "../escape")


def test_the_command_runs_as_a_subprocess_with_a_table(bundle_dir, tmp_path):
    root = fake_boards.build("jetson_nano", tmp_path / "nano")  # profiling as a Nano needs a Nano
    done = subprocess.run([sys.executable, "-m", "edgesplit.runtime.cli", "profile", str(bundle_dir), "--board", "jetson_nano",
                           "--repeats", "2", "--warmup", "0"], cwd=str(REPO), capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, EDGESPLIT_SYSROOT=str(root)))
    assert done.returncode == 0, done.stderr
    assert "median ms" in done.stdout and "saved %s" % profile_path(bundle_dir, "jetson_nano") in done.stdout
    if "CUDAExecutionProvider" not in done.stdout:  # a CPU-only onnxruntime: the Jetson's providers are missing
        assert "CUDAExecutionProvider" in done.stderr and "falling back to CPUExecutionProvider" in done.stderr


def test_bad_arguments_are_user_errors(bundle_dir, capsys):
    assert main(["profile", str(bundle_dir), "--board", "x86_cpu", "--repeats", "0"]) == 1
    assert "--repeats must be at least 1" in capsys.readouterr().err
    assert main(["profile", str(bundle_dir), "--board", "no_such_board"]) == 1
    assert "no board config 'no_such_board'" in capsys.readouterr().err


def test_a_tflite_bundle_is_profiled_too(tmp_path, monkeypatch):
    twin_dir = REPO / "tests" / "support" / "data" / "mnist_branchy_tflite"
    try:
        from edgesplit.runtime.segments.tflite_runner import interpreter_class

        interpreter_class()
    except Exception as exc:  # BackendError when no TFLite package is installed
        pytest.skip(str(exc))
    target = tmp_path / "twin"
    shutil.copytree(str(twin_dir), str(target))
    monkeypatch.setenv("EDGESPLIT_SYSROOT", str(fake_boards.build("rpi4", tmp_path / "rpi4")))
    assert main(["profile", str(target), "--board", "rpi4", "--repeats", "2", "--warmup", "1"]) == 0
    stored = load_profile(load_bundle(target), "rpi4")
    assert {s["backend"] for s in stored["segments"]} == {"tflite"} and "tflite" in stored["backends"]
    assert all(s["provider"] is None for s in stored["segments"])
