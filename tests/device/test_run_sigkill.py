"""SIGKILL of ``edgesplit run`` while it logs: the database is intact and keeps every committed task."""
import signal
import sqlite3
import subprocess
import time



def _committed(db):
    try:
        conn = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    except sqlite3.Error:
        return 0
    try:
        return conn.execute("SELECT count(*) FROM tasks").fetchone()[0]
    except sqlite3.Error:
        return 0
    finally:
        conn.close()


def test_sigkill_while_logging_keeps_committed_tasks(heldout_files, tmp_path, edgesplit):
    x, y = heldout_files
    db = tmp_path / "run.db"
    run = subprocess.Popen(edgesplit + ["run", "default", "--inputs", x, "--labels", y, "--period-ms", "5",
                                        "--traces", str(db)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen = 0
    deadline = time.monotonic() + 60
    while seen < 40 and time.monotonic() < deadline and run.poll() is None:
        time.sleep(0.05)
        seen = _committed(db)
    assert run.poll() is None, "the run finished before it could be killed"
    run.send_signal(signal.SIGKILL)
    run.wait(10)
    conn = sqlite3.connect(str(db))
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        after = conn.execute("SELECT count(*) FROM tasks").fetchone()[0]
        ids = [r[0] for r in conn.execute("SELECT task_id FROM tasks ORDER BY task_id")]
    finally:
        conn.close()
    assert after >= seen >= 40
    assert ids == list(range(after))
