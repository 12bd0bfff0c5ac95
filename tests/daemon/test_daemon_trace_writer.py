"""The daemon's trace writer process: its death is reported in the log and by status, and tracing goes on."""
import os
import signal
import sqlite3
import time
from pathlib import Path

from support.daemon_process import heldout


def _writer_of(pid: int) -> int:
    # Each thread's children are listed under that thread (a replacement writer is the flusher thread's).
    children = [c for task in Path("/proc/%d/task" % pid).iterdir() for c in (task / "children").read_text().split()]
    writers = [int(c) for c in children if Path("/proc/%s/comm" % c).read_text().strip() == "es-trace-writer"]
    assert len(writers) == 1, children
    return writers[0]


def test_a_killed_trace_writer_is_reported_by_status_and_replaced(make_daemon):
    daemon = make_daemon().start()
    images = heldout(20)
    with daemon.client() as client:
        assert all(client.submit(images[i:i + 1]).ok for i in range(10))
        first = _writer_of(daemon.process.pid)
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while client.status()["traces"]["writer_deaths"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        traces = client.status()["traces"]
        assert traces["writer_deaths"] == 1
        assert "trace writer process (pid %d) was killed by signal 9" % first in traces["last_error"]
        assert all(client.submit(images[i:i + 1]).ok for i in range(10, 20))  # still answered, still traced
        assert _writer_of(daemon.process.pid) != first
    assert daemon.stop() == 0
    assert "trace writer process (pid %d) was killed by signal 9" % first in daemon.log.read_text()
    conn = sqlite3.connect(str(daemon.traces))
    task_ids = [r[0] for r in conn.execute("SELECT task_id FROM tasks ORDER BY seq")]
    conn.close()
    assert len(task_ids) >= 10 and task_ids[-10:] == sorted(task_ids[-10:])  # the ten after the death are there
