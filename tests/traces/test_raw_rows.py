"""Rows given as raw values (the device loop's path): checked and encoded by the writer, stored as records are."""
import logging
import sqlite3
import threading

import pytest

from edgesplit.runtime.traces import TaskRecord, TraceError, TraceStore, TransitionRecord
from support.trace_rows import as_records as _as_records, rows as _rows, task_values as _task_values, \
    transition_values as _transition_values


@pytest.mark.parametrize("background", [True, False])
def test_raw_values_store_exactly_the_rows_records_store(tmp_path, background):
    stores = {}
    for how in ("records", "values"):
        db = tmp_path / ("%s.db" % how)
        with TraceStore(db, batch_size=8, flush_interval_s=60.0, background_commit=background) as store:
            store.start_run(run_id="r1", started_s=1.0)
            for i in range(30):
                task, transition = _task_values(i), _transition_values(i)
                if how == "records":
                    record, step = _as_records(task, transition)
                    store.log_task(record)
                    store.log_transition(step)
                else:
                    store.log_task_values(task)
                    store.log_transition_values(transition)
        stores[how] = db
    for table in ("runs", "tasks", "transitions"):
        assert _rows(stores["values"], table) == _rows(stores["records"], table), table
    assert len(_rows(stores["values"], "tasks")) == 30


def test_a_state_passed_again_as_the_next_state_is_stored_the_same(tmp_path):
    # The controller hands the writer the previous next state as this state (the same list): encoded once.
    db = tmp_path / "t.db"
    with TraceStore(db, batch_size=4, flush_interval_s=60.0, background_commit=True) as store:
        store.start_run(run_id="r1")
        state = [0.0, 1.0]
        for i in range(10):
            following = [float(i), i + 0.5]
            store.log_transition_values(_transition_values(i, state=state, next_state=following))
            state = following
    rows = _rows(db, "transitions")
    assert [r[3] for r in rows[1:]] == [r[6] for r in rows[:-1]]
    assert rows[3][3] == "[2.0,2.5]" and rows[3][6] == "[3.0,3.5]"


def test_a_raw_row_the_writer_refuses_is_logged_by_task_and_field_and_counted(tmp_path, caplog):
    db = tmp_path / "t.db"
    caplog.set_level(logging.ERROR)
    with TraceStore(db, batch_size=64, flush_interval_s=60.0, background_commit=True) as store:
        store.start_run(run_id="r1")
        store.log_task_values(_task_values(0))
        store.log_task_values(_task_values(1, latency_s=float("inf")))
        store.log_transition_values(_transition_values(0, reward=float("nan")))
        store.log_task_values(_task_values(2, segment_times={"main0": object()}))
        store.log_task_values(_task_values(3))
        store.flush()
        assert store.refused_rows == 3
    assert [r[1] for r in _rows(db, "tasks")] == [0, 3]
    assert _rows(db, "transitions") == []
    assert "task 1 of run r1: latency_s is infinite" in caplog.text
    assert "transition 0 of run r1: reward is NaN or missing" in caplog.text
    assert "task 2 of run r1: segment_times: cannot store as JSON" in caplog.text


def test_raw_values_on_a_store_without_a_writer_are_refused_at_once(tmp_path):
    with TraceStore(tmp_path / "t.db", batch_size=4, flush_interval_s=None, background_flush=False) as store:
        store.start_run(run_id="r1")
        with pytest.raises(TraceError, match="latency_s is infinite"):
            store.log_task_values(_task_values(1, latency_s=float("inf")))
        assert store.refused_rows == 0


def test_raw_values_need_a_run(tmp_path):
    with TraceStore(tmp_path / "t.db", background_commit=True) as store:
        with pytest.raises(TraceError, match="no run"):
            store.log_task_values(_task_values(0, run_id=None))


def test_raw_values_wait_while_a_whole_batch_is_uncommitted(tmp_path):
    # The durability bound: at most batch_size rows uncommitted, raw rows counted as soon as they are queued.
    db = tmp_path / "t.db"
    with TraceStore(db, batch_size=4, flush_interval_s=60.0, background_commit=True) as store:
        store.start_run(run_id="r1")
        with store._lock:  # the writer cannot write meanwhile: as behind as a disk slower than the tasks
            for i in range(2):
                store.log_task_values(_task_values(i))
                store.log_transition_values(_transition_values(i))
            fifth = threading.Thread(target=store.log_task_values, args=(_task_values(2),))
            fifth.start()
            fifth.join(0.2)
            assert fifth.is_alive()
        fifth.join(10)
        assert not fifth.is_alive() and store.writer_wait_s > 0.0
    assert len(_rows(db, "tasks")) == 3 and len(_rows(db, "transitions")) == 2
