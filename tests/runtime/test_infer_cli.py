"""`edgesplit infer` as a user runs it: a real subprocess, real files, exit codes and messages."""
import json
import subprocess
import sys

import numpy as np
import pytest

from edgesplit.runtime.default_bundle import load_heldout


def edgesplit(*args):
    return subprocess.run([sys.executable, "-m", "edgesplit.runtime.cli"] + [str(a) for a in args],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def images_npy(tmp_path):
    images, labels = load_heldout()
    path = tmp_path / "images.npy"
    np.save(str(path), images[:20])
    return path, labels[:20]


def test_infer_json_reports_exits_entropies_and_times(tmp_path, images_npy):
    path, labels = images_npy
    out = tmp_path / "scores.npy"
    done = edgesplit("infer", "default", path, "--out", out, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    scores = np.load(str(out))
    assert scores.shape[0] == 20 and report["tasks"] == 20
    task = report["per_task"][0]
    assert set(task) >= {"exit", "entropies", "segment_ms", "latency_ms"}
    assert all(0.0 <= h <= 1.0 for h in task["entropies"].values())
    assert (scores.argmax(axis=1) == labels).mean() >= 0.8


def test_no_exits_runs_everything(tmp_path, images_npy):
    path, _ = images_npy
    done = edgesplit("infer", "default", path, "--out", tmp_path / "o.npy", "--no-exits", "--json")
    report = json.loads(done.stdout)
    last = str(len(report["exit_counts"]) - 1)
    assert report["exit_counts"][last] == 20


def test_wrong_shape_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.npy"
    np.save(str(bad), np.zeros((2, 28, 28), dtype=np.float32))
    done = edgesplit("infer", "default", bad, "--out", tmp_path / "o.npy")
    assert done.returncode == 1
    assert "shape (1, 28, 28)" in done.stderr and "expected" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "o.npy").exists()


def test_wrong_dtype_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.npy"
    np.save(str(bad), np.zeros((2, 1, 28, 28), dtype=np.float64))
    done = edgesplit("infer", "default", bad, "--out", tmp_path / "o.npy")
    assert done.returncode == 1 and "dtype float64" in done.stderr and "astype" in done.stderr


def test_corrupted_bundle_is_a_clear_error(tmp_path, bundle_copy, images_npy):
    path, _ = images_npy
    manifest = json.loads((bundle_copy / "manifest.json").read_text())
    seg = bundle_copy / manifest["segments"][-1]["file"]
    seg.write_bytes(seg.read_bytes()[:-10])
    done = edgesplit("infer", bundle_copy, path, "--out", tmp_path / "o.npy")
    assert done.returncode == 1 and "sha256" in done.stderr and "Traceback" not in done.stderr


def test_bad_thresholds_are_named(tmp_path, images_npy):
    path, _ = images_npy
    done = edgesplit("infer", "default", path, "--out", tmp_path / "o.npy", "--thresholds", "0.2,x")
    assert done.returncode == 1 and "--thresholds" in done.stderr
