"""Real processes: the peer dies mid-stream and comes back; ``edgesplit run`` completes every task."""
import json
import signal
import sqlite3
import subprocess
import time



def test_peer_killed_then_restarted_every_task_completes(peers, heldout_files, tmp_path, free_port, edgesplit):
    x, y = heldout_files
    port = free_port
    peer = peers(port)
    db = tmp_path / "run.db"
    run = subprocess.Popen(edgesplit + ["run", "default", "--peer", "tcp://127.0.0.1:%d" % port, "--inputs", x,
                                        "--labels", y, "--cut", "0", "--period-ms", "10", "--limit", "600",
                                        "--traces", str(db), "--json"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2.0)
    peer.stop(signal.SIGKILL)
    time.sleep(1.5)
    peers(port)
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, err
    report = json.loads(out)
    assert report["tasks"] == report["completed"] == 600
    assert report["fallbacks"] > 0
    with sqlite3.connect(str(db)) as conn:
        rows = conn.execute("SELECT task_id, fallback, cut, result FROM tasks ORDER BY task_id").fetchall()
    assert [r[0] for r in rows] == list(range(600))
    assert all(r[3] is not None for r in rows)
    first_fallback = min(r[0] for r in rows if r[1])
    last_fallback = max(r[0] for r in rows if r[1])
    # Offloading resumed after the restart, in the same device process.
    assert any(r[2] == 0 and not r[1] for r in rows if r[0] > last_fallback)
    assert any(r[2] == 0 for r in rows if r[0] < first_fallback)
