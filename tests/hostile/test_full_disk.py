"""Defect 6: a full disk under the trace database degrades, never breaks.

The database lives on a real tmpfs that fills up (ENOSPC from the kernel), inside a private mount
namespace. Every task is still answered ``ok``; the rows the disk refused wait in memory or are
counted; one log line says writing stopped and one that it resumed when space came back; SIGTERM
exits 0 and the database passes ``PRAGMA integrity_check``. ``edgesplit run`` finishes its stream.
"""
import json
import re
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from support import small_disk
from support.daemon_process import ROOT, heldout
from support.waiting import wait_until

pytestmark = pytest.mark.skipif(not small_disk.available(), reason="needs root, unshare and nsenter for a tmpfs")


def test_daemon_answers_every_task_on_a_full_disk_and_resumes_when_space_returns(make_daemon, tmp_path):
    disk, out = tmp_path / "disk", tmp_path / "out"
    script = small_disk.wrapper(tmp_path, sys.executable, disk, out, size="8m", ballast_kib=6144)
    daemon = make_daemon(python=script)
    daemon.config.write_text(daemon.config.read_text().replace(str(daemon.traces), str(disk / "traces.db")))
    daemon.start()
    images = heldout(200)
    answers = []
    with daemon.client(timeout_s=30.0) as client:
        # Fill the 2 MiB left on the disk: rows, then their WAL frames.
        while len(answers) < 20000:
            answers += [client.submit(images[i:i + 1], deadline_ms=5000) for i in range(100)]
            now = client.status()
            if now["traces"].get("writable") is False or now["tasks"]["errors"]:
                break
        assert [a.status for a in answers if not a.ok] == []
        full = client.status()["traces"]
        assert full["writable"] is False, full
        answers += [client.submit(images[i:i + 1], deadline_ms=5000) for i in range(100)]
        small_disk.free(daemon.process.pid, disk / "ballast")
        answers += [client.submit(images[i:i + 1], deadline_ms=5000) for i in range(20)]
        resumed = wait_until(lambda: client.status()["traces"]["writable"] and client.status()["traces"], 30.0, 0.1)
        assert resumed, client.status()["traces"]
        answers += [client.submit(images[i:i + 1], deadline_ms=5000) for i in range(20)]
        status = client.status()
    assert [a.status for a in answers if not a.ok] == []
    assert status["tasks"]["errors"] == 0 and status["traces"]["backlog_rows"] == 0
    assert resumed["committed_rows"] > full["committed_rows"]
    assert daemon.stop() == 0
    log = daemon.log.read_text()
    assert log.count("cannot write traces") == 1 and log.count("trace writes resumed") == 1, log[-3000:]
    assert "Traceback" not in log
    with sqlite3.connect(str(out / "traces.db")) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        logged = db.execute("SELECT count(*) FROM tasks").fetchone()[0]
    assert logged >= len(answers) - status["traces"]["unwritten_rows"]
    print(json.dumps({"answered": len(answers), "rows_logged": logged, "full_at": full, "resumed": resumed,
                      "log_lines": len(log.splitlines())}))


def test_run_finishes_its_stream_when_the_trace_disk_fills(tmp_path):
    disk, out = tmp_path / "disk", tmp_path / "out"
    script = small_disk.wrapper(tmp_path, sys.executable, disk, out, size="1m", ballast_kib=0)
    inputs = tmp_path / "x.npy"
    np.save(str(inputs), np.concatenate([heldout(500)] * 6))
    done = subprocess.run([script, "-m", "edgesplit.runtime.cli", "run", "default", "--inputs", str(inputs),
                           "--traces", str(disk / "run.db"), "--json"], cwd=str(ROOT), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=300)
    err = done.stderr.decode()
    assert done.returncode == 0, err[-3000:]
    report = json.loads(done.stdout)
    assert report["tasks"] == report["completed"] == 3000
    assert len(re.findall("cannot write traces", err)) == 1 and "Traceback" not in err, err[-3000:]
    with sqlite3.connect(str(out / "run.db")) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
