"""ProcessTraceStore: SQLite in a writer process, fed batches over a socket, with real signals."""
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edgesplit.runtime.traces import TraceError, TraceStore
from edgesplit.runtime.traces.writer_process import ProcessTraceStore

from support.trace_rows import as_records as _as_records, rows as _rows, task_values as _task_values, \
    transition_values as _transition_values

CHILD = Path(__file__).with_name("process_store_child.py")


def _eventually(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_the_writer_process_stores_the_rows_the_thread_writer_stores(tmp_path):
    with TraceStore(tmp_path / "thread.db", batch_size=8, flush_interval_s=60.0, background_commit=True) as store:
        store.start_run(run_id="r1", started_s=1.0, board="b", config={"k": 1})
        for i in range(40):
            record, step = _as_records(_task_values(i), _transition_values(i))
            store.log_task(record)
            store.log_transition(step)
    with ProcessTraceStore(tmp_path / "process.db", batch_size=8, flush_interval_s=60.0) as store:
        assert store.start_run(run_id="r1", started_s=1.0, board="b", config={"k": 1}) == "r1"
        for i in range(40):
            if i % 2:
                record, step = _as_records(_task_values(i), _transition_values(i))
                store.log_task(record)
                store.log_transition(step)
            else:
                store.log_task_values(_task_values(i))
                store.log_transition_values(_transition_values(i))
        store.flush()
        assert store.committed_rows == 80 and store.last_committed_task_id == 39 and store.writable
    for table in ("runs", "tasks", "transitions"):
        assert _rows(tmp_path / "process.db", table) == _rows(tmp_path / "thread.db", table), table


def test_feedback_and_refused_rows_go_through_the_writer(tmp_path, caplog):
    with ProcessTraceStore(tmp_path / "t.db", batch_size=8, flush_interval_s=60.0) as store:
        store.start_run(run_id="r1")
        store.log_task_values(_task_values(0))
        store.log_task_values(_task_values(1, latency_s=float("inf")))
        assert store.set_feedback(0, label=3, rating=0.5) is True
        assert store.set_feedback(1, label=3) is False  # refused by the writer: not in the database
        with pytest.raises(TraceError, match="rating must be a finite number"):
            store.set_feedback(0, rating=float("nan"))
        assert store.refused_rows == 1
    rows = _rows(tmp_path / "t.db", "tasks")
    assert [(r[1], r[13], r[16]) for r in rows] == [(0, 3, 0.5)]  # task id, label, rating


def test_a_row_reaches_the_disk_within_the_flush_interval_without_more_rows(tmp_path):
    db = tmp_path / "t.db"
    with ProcessTraceStore(db, batch_size=64, flush_interval_s=0.1) as store:
        store.start_run(run_id="r1")
        store.log_task_values(_task_values(0))
        assert _eventually(lambda: len(_rows(db, "tasks")) == 1)
        assert store.committed_rows == 1 or _eventually(lambda: store.committed_rows == 1)


def test_at_most_one_batch_is_uncommitted_while_the_writer_is_stopped(tmp_path):
    db = tmp_path / "t.db"
    with ProcessTraceStore(db, batch_size=4, flush_interval_s=60.0) as store:
        store.start_run(run_id="r1")
        os.kill(store.writer_pid, signal.SIGSTOP)  # as behind as a disk that does not answer
        try:
            for i in range(2):
                store.log_task_values(_task_values(i))
                store.log_transition_values(_transition_values(i))
            fifth = threading.Thread(target=store.log_task_values, args=(_task_values(2),))
            fifth.start()
            fifth.join(0.3)
            assert fifth.is_alive()  # four rows uncommitted: the fifth waits for the writer
            assert len(_rows(db, "tasks")) == 0
        finally:
            os.kill(store.writer_pid, signal.SIGCONT)
        fifth.join(10)
        assert not fifth.is_alive() and store.writer_wait_s > 0.0
    assert len(_rows(db, "tasks")) == 3 and len(_rows(db, "transitions")) == 2


def test_a_row_that_waits_for_room_behind_a_partly_shipped_buffer_is_written(tmp_path):
    # The flusher hands the writer whatever is buffered once it is older than the flush interval, so with a slow
    # writer the rows awaiting its answer need not be whole half-batches: a row can find the bound reached with
    # rows of its own batch still buffered. It waits, and then it is written with them.
    db = tmp_path / "t.db"
    with ProcessTraceStore(db, batch_size=4, flush_interval_s=0.05) as store:
        store.start_run(run_id="r1")
        os.kill(store.writer_pid, signal.SIGSTOP)  # as behind as a disk that does not answer
        try:
            store.log_task_values(_task_values(0))
            assert _eventually(lambda: not store._buffer)  # handed off alone by the flusher: 1 row unacknowledged
            store.log_task_values(_task_values(1))
            store.log_task_values(_task_values(2))  # half a batch: handed off, 3 unacknowledged
            store.log_task_values(_task_values(3))  # buffered: 3 + 1, the bound
            fifth = threading.Thread(target=store.log_task_values, args=(_task_values(4),))
            fifth.start()
            fifth.join(0.3)
            assert fifth.is_alive()
        finally:
            os.kill(store.writer_pid, signal.SIGCONT)
        fifth.join(10)
        assert not fifth.is_alive()
    assert [r[1] for r in _rows(db, "tasks")] == [0, 1, 2, 3, 4]


def test_a_writer_that_dies_is_reported_and_replaced(tmp_path, caplog):
    caplog.set_level(logging.ERROR)
    db = tmp_path / "t.db"
    with ProcessTraceStore(db, batch_size=4, flush_interval_s=60.0) as store:
        store.start_run(run_id="r1")
        store.log_task_values(_task_values(0))
        store.flush()
        first = store.writer_pid
        os.kill(first, signal.SIGKILL)
        assert _eventually(lambda: store.writer_deaths == 1)
        assert "trace writer process (pid %d)" % first in caplog.text and "killed by signal 9" in caplog.text
        assert "trace writer process" in store.last_error
        for i in range(1, 6):
            store.log_task_values(_task_values(i))
        store.flush()
        assert store.writer_pid != first
    assert [r[1] for r in _rows(db, "tasks")] == list(range(6))


def test_a_database_the_writer_cannot_open_is_refused_by_name(tmp_path):
    with pytest.raises(TraceError, match="is a directory"):
        ProcessTraceStore(tmp_path)


def test_sigterm_to_the_whole_group_loses_no_row(tmp_path):
    db = tmp_path / "t.db"
    child = subprocess.Popen([sys.executable, str(CHILD), str(db)], stdout=subprocess.PIPE, text=True,
                             start_new_session=True)
    try:
        line = child.stdout.readline()
        assert line.startswith("ready "), line
        writer = int(line.split()[1])
        time.sleep(0.3)
        os.killpg(child.pid, signal.SIGTERM)  # the daemon and its writer alike, as systemd stops a unit
        out, _ = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
    assert child.returncode == 0
    tasks, transitions = map(int, out.split("logged ")[1].split())
    assert tasks > 100
    assert [r[1] for r in _rows(db, "tasks")] == list(range(tasks))
    assert len(_rows(db, "transitions")) == transitions
    assert _eventually(lambda: not Path("/proc/%d" % writer).exists() or
                       Path("/proc/%d/stat" % writer).read_text().split()[2] == "Z")
    conn = sqlite3.connect(str(db))
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    conn.close()


def test_a_writer_that_dies_while_a_task_waits_for_room_lets_the_task_go_on(tmp_path, caplog):
    caplog.set_level(logging.ERROR)
    db = tmp_path / "t.db"
    with ProcessTraceStore(db, batch_size=4, flush_interval_s=60.0) as store:
        store.start_run(run_id="r1")
        first = store.writer_pid
        os.kill(first, signal.SIGSTOP)
        for i in range(4):
            store.log_task_values(_task_values(i))
        fifth = threading.Thread(target=store.log_task_values, args=(_task_values(4),))
        fifth.start()
        fifth.join(0.3)
        assert fifth.is_alive()  # waiting for the stopped writer
        os.kill(first, signal.SIGKILL)
        fifth.join(10)
        assert not fifth.is_alive() and store.writer_deaths == 1
        assert store.unwritten_rows == 4  # the four the dead writer never acknowledged
        store.log_task_values(_task_values(5))
        store.flush()
    assert [r[1] for r in _rows(db, "tasks")] == [4, 5]


def test_a_stored_label_is_committed_while_the_board_is_idle(tmp_path):
    """The API answers "stored" only for a label on disk: with no task rows after it (an idle board), it must
    not wait in an open transaction for the next batch (a power cut then loses it, and readers do not see it)."""
    with ProcessTraceStore(tmp_path / "t.db", batch_size=8, flush_interval_s=60.0) as store:
        store.start_run(run_id="r1")
        store.log_task_values(_task_values(0))
        store.flush()
        assert store.set_feedback(0, label=7) is True
        with sqlite3.connect(str(tmp_path / "t.db"), timeout=0.5) as reader:
            assert reader.execute("SELECT label FROM tasks WHERE task_id = 0").fetchone() == (7,)


def test_a_frozen_app_gets_the_thread_writer(tmp_path, monkeypatch, caplog):
    """A frozen app's sys.executable is the app itself: `app -m ...writer_process` would run the app again."""
    from edgesplit.runtime.device.pipeline import StoreSettings, open_store

    monkeypatch.setattr(sys, "frozen", True, raising=False)
    with caplog.at_level(logging.WARNING):
        store = open_store(StoreSettings(str(tmp_path / "t.db")))
    try:
        assert type(store) is TraceStore
    finally:
        store.close()
    assert "thread" in caplog.text and "frozen" in caplog.text


def test_the_embedded_runtime_writes_in_its_own_process(tmp_path):
    """embed.Runtime lives in somebody else's application: it starts no child interpreter there."""
    from edgesplit.runtime.embed import Runtime

    with Runtime(traces=str(tmp_path / "t.db")) as runtime:
        assert type(runtime._pipeline.store) is TraceStore


def _gone(pid):
    stat = Path("/proc/%d/stat" % pid)
    try:
        return stat.read_text().split()[2] == "Z"
    except FileNotFoundError:  # reaped already
        return True


def _no_new_writer(store, monkeypatch):
    def refuse():
        raise TraceError("%s: cannot start the trace writer process (test)" % store.path)
    monkeypatch.setattr(store, "_start", refuse)


def test_rows_buffered_when_no_writer_can_start_are_counted_at_close(tmp_path, monkeypatch, caplog):
    # A writer that died took nothing of the buffer; with no writer to replace it, close() must say how many rows it
    # could not write, not drop them silently (review finding: "up to 0 rows lost" with 2 rows gone).
    caplog.set_level(logging.ERROR)
    db = tmp_path / "t.db"
    store = ProcessTraceStore(db, batch_size=4, flush_interval_s=60.0)
    store.start_run(run_id="r1")
    store.log_task_values(_task_values(0))  # buffered (half a batch is 2 rows)
    pid = store.writer_pid
    real_send = store._send

    def die_on_rows(message):
        if message[0] == "rows":  # the writer dies as the hand-off is written: the rows never reached it
            os.kill(pid, signal.SIGKILL)
            assert _eventually(lambda: _gone(pid))
            from edgesplit.runtime.traces.writer_process import WriterDied
            raise WriterDied("test: broken pipe")
        return real_send(message)

    monkeypatch.setattr(store, "_send", die_on_rows)
    _no_new_writer(store, monkeypatch)
    store.log_task_values(_task_values(1))  # half a batch: the hand-off finds the writer dead
    store.close()
    assert _rows(db, "tasks") == []
    assert store.unwritten_rows == 2
    assert "2 rows not written" in caplog.text


def test_a_task_waiting_for_room_goes_on_when_writers_die_back_to_back(tmp_path, monkeypatch):
    # The rows a dead writer never got go back to the buffer; the wait for room must hand them to the next writer
    # rather than wait for answers to rows it never sent (review finding: the task thread hung, holding the lock).
    from edgesplit.runtime.traces.writer_process import WriterDied

    db = tmp_path / "t.db"
    store = ProcessTraceStore(db, batch_size=1, flush_interval_s=60.0)
    stuck = None
    try:
        store.start_run(run_id="r1")
        real_send = store._send
        failures = []

        def writer_dies_as_rows_are_sent(message):
            if message[0] == "rows" and len(failures) < 2:  # two writers in a row die as rows are handed to them
                pid = store.writer_pid
                failures.append(pid)
                os.kill(pid, signal.SIGKILL)
                assert _eventually(lambda: _gone(pid))
                raise WriterDied("test: broken pipe")
            return real_send(message)

        monkeypatch.setattr(store, "_send", writer_dies_as_rows_are_sent)
        for i in range(2):  # row 0: back in the buffer; row 1 waits for room, and row 0's second hand-off fails
            task = threading.Thread(target=store.log_task_values, args=(_task_values(i),), daemon=True)
            task.start()
            task.join(15)
            if task.is_alive():
                stuck = i
                break
        assert stuck is None, "row %d still waiting for room" % stuck
        store.flush()
        assert len(failures) == 2 and store.writer_deaths == 2 and store.unwritten_rows == 0
    finally:
        if stuck is None:  # a stuck task holds the store's lock: close() would wait for it
            store.close()
        elif store.writer_pid:
            os.kill(store.writer_pid, signal.SIGKILL)
    assert [r[1] for r in _rows(db, "tasks")] == [0, 1]


def test_rows_a_dead_writer_received_are_counted_lost_once_and_not_sent_again(tmp_path, monkeypatch):
    # A hand-off that was sent whole before the writer's death showed is among that writer's unacknowledged rows
    # (counted lost); putting it back in the buffer as well would count it twice and write it again.
    db = tmp_path / "t.db"
    with ProcessTraceStore(db, batch_size=8, flush_interval_s=60.0) as store:
        store.start_run(run_id="r1")
        real_read = store._read
        calls = []

        def read_then_die(timeout):
            if not calls:
                calls.append(timeout)
                from edgesplit.runtime.traces.writer_process import WriterDied
                raise WriterDied("test: died after the hand-off was sent")
            return real_read(timeout)

        monkeypatch.setattr(store, "_read", read_then_die)
        for i in range(4):  # the fourth row hands off half a batch; the read after it finds the writer "dead"
            store.log_task_values(_task_values(i))
        assert calls and store.writer_deaths == 1
        assert store._buffer == [] and store.unwritten_rows == 4
        store.flush()
