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
