"""The demo end to end with a few images: peer subprocess, software link, five strategies."""
import json
import subprocess



def test_demo_runs_with_a_small_limit(tmp_path, edgesplit):
    db = tmp_path / "demo.db"
    done = subprocess.run(edgesplit + ["demo", "--limit", "20", "--json", "--traces", str(db)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["scenario"]["emulated"] is True
    names = [r["strategy"] for r in report["results"]]
    assert names[0] == "local-only" and names[1] == "remote-only" and names[-1] == "adaptive"
    assert all(r["tasks"] == r["completed"] == 20 for r in report["results"])
    assert report["adaptive_series"]
    assert db.exists()
    # which policy the adaptive row ran, and that it is the shipped one (the demo says why it ships it)
    assert report["policy"]["shipped"] is True and report["policy"]["path"].endswith("demo_policy.npz")
    assert len(report["policy"]["policy_id"]) == 64 and report["policy"]["algorithm"]


def test_demo_names_the_policy_it_ran(tmp_path, edgesplit):
    from edgesplit.runtime.default_bundle import DEMO_POLICY_FILE

    done = subprocess.run(edgesplit + ["demo", "--limit", "5", "--no-progress", "--traces", str(tmp_path / "a.db")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "adaptive = the shipped planner policy" in done.stdout and "has yet beaten every baseline" in done.stdout
    copy = tmp_path / "mine.npz"
    copy.write_bytes(DEMO_POLICY_FILE.read_bytes())
    done = subprocess.run(edgesplit + ["demo", "--limit", "5", "--no-progress", "--policy", str(copy), "--json",
                                       "--traces", str(tmp_path / "b.db")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["policy"]["shipped"] is False  # another file, even with the same content


def test_the_baseline_rows_stay_the_demos_whatever_policy_runs_beside_them(tmp_path, edgesplit):
    # A trained policy records no static baselines: the single-threshold row is still the demo's (0.30 at cut 3).
    import numpy as np

    from edgesplit.policies_lite import edgeml_decoder, save_policy

    trained = tmp_path / "trained.npz"
    save_policy(trained, features=["bandwidth_mbps"], layers=[(np.zeros((4, 1)), np.full(4, 0.5))],
                activations=["identity"], decoder=edgeml_decoder(2, 4), mean=[0.0], std=[1.0],
                provenance={"traces": [], "energy_unit": "mJ", "energy_proxy": "emulated", "board_emulated": True})
    done = subprocess.run(edgesplit + ["demo", "--limit", "5", "--no-progress", "--policy", str(trained), "--json",
                                       "--traces", str(tmp_path / "c.db")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    names = [r["strategy"] for r in json.loads(done.stdout)["results"]]
    assert "one threshold 0.30 (cut 3)" in names and "neurosurgeon (cut 0)" in names, names


def test_demo_reports_progress_on_stderr_and_takes_verbose_after_the_command(tmp_path, edgesplit):
    done = subprocess.run(edgesplit + ["demo", "-v", "--limit", "10", "--json", "--traces", str(tmp_path / "d.db")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["images"] == 10  # stdout stays one JSON document
    progress = [line for line in done.stderr.splitlines() if line.startswith("demo: ")]
    assert progress[0].startswith("demo: starting the peer")
    assert any("running 5 strategies on 10 images" in line for line in progress)
    for name in ("local-only", "remote-only", "adaptive"):
        assert any(line.startswith("demo: %s finished: 10/10 tasks" % name) for line in progress), name
    assert "INFO " in done.stderr  # -v after the command name turned on info logs


def test_demo_no_progress_is_quiet(tmp_path, edgesplit):
    done = subprocess.run(edgesplit + ["demo", "--no-progress", "--limit", "5", "--json", "--traces",
                                       str(tmp_path / "d.db")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert not [line for line in done.stderr.splitlines() if line.startswith("demo: ")]
