"""SIGKILL a real process while it logs: the database stays intact and keeps every committed task."""
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgesplit.runtime.traces import summarize

CHILD = Path(__file__).with_name("traces_child.py")


def _run_and_kill(db: Path, batch_size: int, rng: random.Random, max_rows=None, background=False, raw=False) -> int:
    """Start the child, kill it after a random number of commits plus a random delay; return the last
    task id it reported committed."""
    args = [sys.executable, str(CHILD), str(db), str(batch_size), str(max_rows) if max_rows else "-"]
    args += ["bg" if background else "-"] + (["raw"] if raw else [])
    child = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
    try:
        assert child.stdout.readline().strip() == "ready", child.stderr.read()
        last = -1
        for _ in range(rng.randint(1, 40)):
            line = child.stdout.readline()
            assert line.startswith("committed "), (line, child.stderr.read())
            last = int(line.split()[1])
        time.sleep(rng.uniform(0, 0.02))
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
        # Lines printed between our last read and the kill are commits too.
        for line in child.stdout.read().splitlines():
            if line.startswith("committed "):
                last = int(line.split()[1])
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    return last


def _check_intact(db: Path):
    conn = sqlite3.connect(str(db))
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        ids = [r[0] for r in conn.execute("SELECT task_id FROM tasks ORDER BY seq")]
        dropped = conn.execute("SELECT rows FROM dropped WHERE table_name = 'tasks'").fetchone()[0]
    finally:
        conn.close()
    return ids, dropped


@pytest.mark.parametrize("seed", range(4))
def test_sigkill_keeps_every_committed_task(tmp_path, seed):
    rng = random.Random(seed)
    db = tmp_path / "traces.db"
    last = _run_and_kill(db, batch_size=rng.choice([1, 7, 32]), rng=rng)
    ids, dropped = _check_intact(db)
    assert dropped == 0
    assert last >= 0 and ids[:last + 1] == list(range(last + 1))  # every reported task, in order
    assert ids == list(range(len(ids)))                          # and nothing torn or out of order
    summary = summarize(db)  # the reader copes with the hot WAL the kill left behind
    assert summary["rows"]["tasks"] == len(ids)


def test_sigkill_during_size_capped_logging(tmp_path):
    rng = random.Random(11)
    db = tmp_path / "capped.db"
    for _ in range(2):  # a second run appends to the same, recovered database
        last = _run_and_kill(db, batch_size=5, rng=rng, max_rows=60)
        ids, dropped = _check_intact(db)
        assert len(ids) <= 60
        assert last in ids  # the newest committed task survives the cap
        conn = sqlite3.connect(str(db))
        total = conn.execute("SELECT count(*) FROM tasks").fetchone()[0]
        conn.close()
        assert total + dropped >= last + 1  # every committed task is either present or counted as dropped


@pytest.mark.parametrize("raw", [False, True], ids=["records", "raw-values"])
@pytest.mark.parametrize("seed", range(3))
def test_sigkill_with_the_background_writer_keeps_every_committed_task_in_order(tmp_path, seed, raw):
    rng = random.Random(100 + seed)
    db = tmp_path / "traces.db"
    last = _run_and_kill(db, batch_size=rng.choice([2, 8, 32]), rng=rng, background=True, raw=raw)
    ids, dropped = _check_intact(db)
    assert dropped == 0
    assert last >= 0 and ids[:last + 1] == list(range(last + 1))
    assert ids == list(range(len(ids)))
