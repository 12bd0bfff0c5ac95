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
