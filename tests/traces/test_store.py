"""TraceStore on real SQLite files: batching, late labels, size caps, schema identity."""
import json
import sqlite3

import pytest

from edgesplit.runtime.traces import SCHEMA_VERSION, TaskRecord, TraceError, TraceStore, TransitionRecord, summarize
from edgesplit.runtime.traces import schema


def _count(db, table):
    conn = sqlite3.connect(str(db))
    try:
        return conn.execute("SELECT count(*) FROM %s" % table).fetchone()[0]
    finally:
        conn.close()


def _task(i, **extra):
    return TaskRecord(task_id=i, arrival_s=float(i), latency_s=0.05, exit=1, cut=2, **extra)


def test_commits_every_batch_and_on_close(tmp_path):
    db = tmp_path / "t.db"
    commits = []
    store = TraceStore(db, batch_size=10, flush_interval_s=None, on_commit=lambda s: commits.append(s.committed_rows))
    store.start_run(board="pi4")
    for i in range(25):
        store.log_task(_task(i))
    assert _count(db, "tasks") == 20  # another connection sees only committed batches
    store.close()
    assert _count(db, "tasks") == 25
    assert commits == [0, 10, 20, 25]
    store.close()  # twice is fine


def test_commits_after_the_flush_interval_with_an_injected_clock(tmp_path):
    now = [0.0]
    db = tmp_path / "t.db"
    with TraceStore(db, batch_size=1000, flush_interval_s=2.0, background_flush=False, clock=lambda: now[0]) as store:
        store.start_run()
        store.log_task(_task(0))
        now[0] = 1.0
        store.log_task(_task(1))
        assert _count(db, "tasks") == 0
        now[0] = 2.5
        store.log_task(_task(2))
        assert _count(db, "tasks") == 3


def test_background_flusher_commits_an_idle_batch(tmp_path):
    import time
    db = tmp_path / "t.db"
    with TraceStore(db, batch_size=1000, flush_interval_s=0.05) as store:
        store.start_run()
        store.log_task(_task(0))
        deadline = time.monotonic() + 10
        while _count(db, "tasks") == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _count(db, "tasks") == 1


def test_record_contents_and_late_label(tmp_path):
    db = tmp_path / "t.db"
    with TraceStore(db, batch_size=2) as store:
        run = store.start_run(board="jetson-nano", bundle_hash="ab" * 32, versions={"edgesplit": "0.1"},
                              config={"latency_bound_s": 0.1})
        store.log_task(TaskRecord(task_id=7, arrival_s=1.5, deadline_s=1.6, exit=2, cut=None,
                                  segment_times={"main0": 0.01}, bytes_sent=0, transfer_s=None,
                                  entropies={"0": 0.9, "2": 0.1}, bandwidth_bps=float("nan"), fallback=True,
                                  result=3, latency_s=0.04, policy_id="pid"))
        assert store.set_label(7, 3) is True
        assert store.set_label(99, 1) is False
    conn = sqlite3.connect(str(db))
    conn.row_factory = sqlite3.Row
    row = dict(conn.execute("SELECT * FROM tasks").fetchone())
    runs = dict(conn.execute("SELECT * FROM runs").fetchone())
    conn.close()
    assert row["run_id"] == run and row["cut"] is None and row["fallback"] == 1 and row["label"] == 3
    assert row["bandwidth_bps"] is None  # NaN = unknown = NULL
    assert json.loads(row["entropies"]) == {"0": 0.9, "2": 0.1}
    assert runs["board"] == "jetson-nano" and json.loads(runs["config"]) == {"latency_bound_s": 0.1}


def test_label_set_later_by_a_new_store(tmp_path):
    db = tmp_path / "t.db"
    with TraceStore(db) as store:
        run = store.start_run()
        store.log_task(_task(1))
    with TraceStore(db) as store:
        assert store.set_label(1, 5, run_id=run)
    assert summarize(db)["labelled_tasks"] == 1


def test_duplicate_and_missing_run_are_errors(tmp_path):
    with TraceStore(tmp_path / "t.db") as store:
        with pytest.raises(TraceError, match="start_run"):
            store.log_task(_task(0))
        store.start_run(run_id="r1")
        store.log_task(_task(0))
        with pytest.raises(TraceError, match="task 0 of run r1: already logged"):
            store.log_task(_task(0))
        with pytest.raises(TraceError, match="already exists"):
            store.start_run(run_id="r1")
        with pytest.raises(TraceError, match="state"):
            store.log_transition(TransitionRecord(step=0, time_s=0, state=[float("inf")], action=[1], reward=0,
                                                  next_state=[0]))


def test_max_rows_drops_oldest_and_counts(tmp_path):
    db = tmp_path / "t.db"
    with TraceStore(db, batch_size=7, max_rows=50) as store:
        store.start_run()
        for i in range(203):
            store.log_task(_task(i))
            if i % 2:
                store.log_transition(TransitionRecord(step=i, time_s=i, state=[i], action=[0], reward=1.0,
                                                      next_state=[i + 1]))
    conn = sqlite3.connect(str(db))
    ids = [r[0] for r in conn.execute("SELECT task_id FROM tasks ORDER BY seq")]
    steps = [r[0] for r in conn.execute("SELECT step FROM transitions ORDER BY seq")]
    conn.close()
    assert ids == list(range(153, 203))
    assert len(steps) == 50 and steps[-1] == 201
    info = summarize(db)
    assert info["dropped"] == {"tasks": 153, "transitions": 101 - 50}


def test_max_bytes_keeps_the_file_bounded(tmp_path):
    db = tmp_path / "t.db"
    cap = 256 * 1024
    with TraceStore(db, batch_size=50, max_bytes=cap) as store:
        store.start_run()
        for i in range(6000):
            store.log_task(_task(i, segment_times={"seg%d" % k: 0.001 * k for k in range(8)}))
    conn = sqlite3.connect(str(db))
    pages, free, size = (conn.execute("PRAGMA %s" % p).fetchone()[0] for p in ("page_count", "freelist_count", "page_size"))
    newest = conn.execute("SELECT max(task_id) FROM tasks").fetchone()[0]
    conn.close()
    assert (pages - free) * size <= cap
    assert db.stat().st_size <= cap + 64 * 1024  # freed pages are reused, so the file plateaus
    info = summarize(db)
    assert newest == 5999 and info["dropped"]["tasks"] > 0
    assert info["rows"]["tasks"] + info["dropped"]["tasks"] == 6000


def test_refuses_foreign_and_newer_files(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a database at all, just some text that is long enough" * 20)
    with pytest.raises(TraceError, match="not an SQLite database"):
        TraceStore(text)
    other = tmp_path / "other.db"
    conn = sqlite3.connect(str(other))
    conn.execute("CREATE TABLE x (a)")
    conn.commit()
    conn.close()
    with pytest.raises(TraceError, match="not an edgesplit trace database"):
        TraceStore(other)
    newer = tmp_path / "newer.db"
    TraceStore(newer).close()
    conn = sqlite3.connect(str(newer))
    conn.execute("PRAGMA user_version = %d" % (SCHEMA_VERSION + 1))
    conn.close()
    with pytest.raises(TraceError, match="newer"):
        TraceStore(newer)
    with pytest.raises(TraceError, match="directory"):
        TraceStore(tmp_path)


def test_migration_hook_runs_in_order(tmp_path, monkeypatch):
    db = tmp_path / "t.db"
    TraceStore(db).close()
    calls = []
    monkeypatch.setattr(schema, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    monkeypatch.setitem(schema.MIGRATIONS, SCHEMA_VERSION,
                        lambda c: (calls.append(SCHEMA_VERSION), c.execute("ALTER TABLE tasks ADD COLUMN rtt_s REAL")))
    conn = sqlite3.connect(str(db), isolation_level=None)
    schema.create_or_migrate(conn, str(db))
    assert calls == [SCHEMA_VERSION]
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
    assert "rtt_s" in [r[1] for r in conn.execute("PRAGMA table_info(tasks)")]
    conn.close()


def _v1_database(path):
    """A trace database exactly as a version-1 edgesplit wrote it, with one task."""
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.executescript(schema.SCHEMA_V1)
    conn.execute("PRAGMA application_id = %d" % schema.APPLICATION_ID)
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO runs (run_id, started_s, board) VALUES ('old-run', 100.0, 'jetson-nano')")
    conn.execute("INSERT INTO tasks (run_id, task_id, arrival_s, exit, result, label, latency_s) "
                 "VALUES ('old-run', 3, 100.5, 1, 4, 4, 0.02)")
    conn.close()


def _columns(db, table):
    conn = sqlite3.connect(str(db))
    try:
        return [r[1] for r in conn.execute("PRAGMA table_info(%s)" % table)]
    finally:
        conn.close()


def test_a_version_1_file_is_read_as_is_and_upgraded_in_place_when_opened_for_writing(tmp_path):
    assert SCHEMA_VERSION == 4
    db = tmp_path / "v1.db"
    _v1_database(db)
    info = summarize(db)  # a reader leaves the file as it is
    assert info["schema_version"] == 1 and info["rows"]["tasks"] == 1 and info["rated_tasks"] == 0
    assert "rating" not in _columns(db, "tasks")
    with TraceStore(db) as store:
        assert store.set_feedback(3, rating=-0.25, run_id="old-run")
        store.start_run(run_id="new-run")
        store.log_task(_task(1, rating=9))
    assert _columns(db, "tasks")[-3:] == ["rating", "energy", "arm"]
    conn = sqlite3.connect(str(db))
    conn.row_factory = sqlite3.Row
    old, new = [dict(r) for r in conn.execute("SELECT * FROM tasks ORDER BY seq")]
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    assert version == 4
    assert old["energy"] is None and old["arm"] is None
    assert (old["run_id"], old["task_id"], old["arrival_s"], old["exit"], old["result"], old["label"],
            old["latency_s"]) == ("old-run", 3, 100.5, 1, 4, 4, 0.02)
    assert old["rating"] == -0.25 and new["rating"] == 9.0
    assert summarize(db)["rated_tasks"] == 2


def test_feedback_sets_label_and_rating_independently_and_refuses_bad_values(tmp_path):
    db = tmp_path / "t.db"
    with TraceStore(db) as store:
        store.start_run()
        store.log_task(_task(1))
        assert store.set_feedback(1, rating=3.5)
        assert store.set_feedback(1, label=2)  # leaves the rating as it was
        assert store.set_feedback(2, label=1, rating=1.0) is False
        for bad, match in (({}, "label, a rating or both"), ({"rating": float("nan")}, "finite"),
                           ({"rating": float("inf")}, "finite"), ({"rating": "good"}, "finite"),
                           ({"label": 2.5}, "integer"), ({"label": True}, "integer")):
            with pytest.raises(TraceError, match=match):
                store.set_feedback(1, **bad)
        with pytest.raises(TraceError, match="rating"):
            store.log_task(_task(5, rating=float("nan")))
    conn = sqlite3.connect(str(db))
    assert conn.execute("SELECT label, rating FROM tasks WHERE task_id = 1").fetchone() == (2, 3.5)
    conn.close()


def test_wal_and_full_sync_are_on(tmp_path):
    store = TraceStore(tmp_path / "t.db", durable=True)
    try:
        assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    finally:
        store.close()


# ---------------------------------------------------------------- background commit (the daemon's mode)


def test_background_commit_keeps_at_most_one_batch_uncommitted_and_writes_everything(tmp_path):
    db = tmp_path / "t.db"
    reader = sqlite3.connect(str(db), isolation_level=None)
    commits = []
    with TraceStore(db, batch_size=8, flush_interval_s=30.0, background_commit=True,
                    on_commit=lambda s: commits.append(s.committed_rows)) as store:
        store.start_run()
        behind = []
        for i in range(200):
            store.log_task(_task(i))
            behind.append(i + 1 - reader.execute("SELECT count(*) FROM tasks").fetchone()[0])
    assert max(behind) <= 8  # a power cut at any moment loses at most one batch of rows
    assert _count(db, "tasks") == 200
    assert [r[0] for r in reader.execute("SELECT task_id FROM tasks ORDER BY seq")] == list(range(200))
    assert commits[-1] == 200 and len(commits) >= 200 // 8
    reader.close()


def test_background_commit_writes_an_idle_row_after_the_flush_interval(tmp_path):
    import time
    db = tmp_path / "t.db"
    with TraceStore(db, batch_size=1000, flush_interval_s=0.05, background_commit=True) as store:
        store.start_run()
        store.log_task(_task(0))
        deadline = time.monotonic() + 10
        while _count(db, "tasks") == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _count(db, "tasks") == 1


def test_background_commit_feedback_and_flush_see_the_rows_still_queued(tmp_path):
    db = tmp_path / "t.db"
    with TraceStore(db, batch_size=1000, flush_interval_s=60.0, background_commit=True) as store:
        store.start_run()
        store.log_task(_task(5))
        assert store.set_feedback(5, label=3, rating=1.5) is True  # the queued row is written first
        store.log_task(_task(6))
        store.flush()
        assert _count(db, "tasks") == 2
    conn = sqlite3.connect(str(db))
    assert conn.execute("SELECT label, rating FROM tasks WHERE task_id = 5").fetchone() == (3, 1.5)
    conn.close()


def test_background_commit_logs_a_duplicate_and_keeps_the_first_row(tmp_path, caplog):
    db = tmp_path / "t.db"
    with TraceStore(db, batch_size=4, background_commit=True) as store:
        store.start_run(run_id="r1")
        store.log_task(_task(0, result=1))
        store.log_task(_task(0, result=2))
        store.log_task(_task(1))
        with pytest.raises(TraceError, match="state"):  # a bad value is still refused in the caller
            store.log_transition(TransitionRecord(step=0, time_s=0, state=[float("inf")], action=[1], reward=0,
                                                  next_state=[0]))
    assert "task 0 of run r1: already logged" in caplog.text
    conn = sqlite3.connect(str(db))
    assert conn.execute("SELECT task_id, result FROM tasks ORDER BY seq").fetchall() == [(0, 1), (1, None)]
    conn.close()
    with pytest.raises(TraceError, match="closed"):
        store.log_task(_task(9))


def test_background_commit_writes_a_batch_wider_than_one_statement_whole_and_in_order(tmp_path):
    # 300 rows of each table in one batch: more values than one SQLite statement may bind (999 before 3.32).
    db = tmp_path / "t.db"
    with TraceStore(db, batch_size=1000, flush_interval_s=60.0, background_commit=True) as store:
        store.start_run(run_id="r1")
        for i in range(300):
            store.log_task(_task(i, segment_times={"s0": i / 7.0}, entropies={"1": 1.0 / (i + 1)}, result=i % 10))
            store.log_transition(TransitionRecord(step=i, time_s=i, state=[i / 3.0], action={"cut": i % 4},
                                                  reward=-i / 11.0, next_state=[(i + 1) / 3.0]))
    conn = sqlite3.connect(str(db))
    tasks = conn.execute("SELECT task_id, segment_times, entropies, result FROM tasks ORDER BY seq").fetchall()
    transitions = conn.execute("SELECT step, state, action, reward, next_state FROM transitions ORDER BY seq").fetchall()
    conn.close()
    assert [t[0] for t in tasks] == list(range(300))
    assert all(json.loads(t[1]) == {"s0": t[0] / 7.0} and json.loads(t[2]) == {"1": 1.0 / (t[0] + 1)}
               and t[3] == t[0] % 10 for t in tasks)
    assert [t[0] for t in transitions] == list(range(300))
    assert all(json.loads(t[1]) == [t[0] / 3.0] and json.loads(t[2]) == {"cut": t[0] % 4} and t[3] == -t[0] / 11.0
               and json.loads(t[4]) == [(t[0] + 1) / 3.0] for t in transitions)


def test_background_commit_skips_a_duplicate_deep_in_a_batch_and_writes_the_rows_around_it(tmp_path, caplog):
    db = tmp_path / "t.db"
    with TraceStore(db, batch_size=1000, flush_interval_s=60.0, background_commit=True) as store:
        store.start_run(run_id="r1")
        for i in range(150):
            store.log_task(_task(i, result=1))
            store.log_transition(TransitionRecord(step=i, time_s=i, state=[0.0], action=[1], reward=0.0,
                                                  next_state=[0.0]))
            if i == 120:
                store.log_task(_task(70, result=2))  # logged twice, in a later statement of the same batch
    assert caplog.text.count("already logged") == 1 and "task 70 of run r1: already logged" in caplog.text
    conn = sqlite3.connect(str(db))
    assert conn.execute("SELECT task_id, result FROM tasks ORDER BY seq").fetchall() == [(i, 1) for i in range(150)]
    assert [r[0] for r in conn.execute("SELECT step FROM transitions ORDER BY seq")] == list(range(150))
    conn.close()


def test_background_commit_counts_the_time_callers_wait_for_a_writer_a_whole_batch_behind(tmp_path):
    import threading
    db = tmp_path / "t.db"
    with TraceStore(db, batch_size=4, flush_interval_s=60.0, background_commit=True) as store:
        store.start_run()
        assert store.writer_wait_s == 0.0
        with store._lock:  # the writer cannot write meanwhile: as behind as a disk slower than the tasks
            for i in range(4):
                store.log_task(_task(i))
            fifth = threading.Thread(target=store.log_task, args=(_task(4),))
            fifth.start()
            fifth.join(0.2)
            assert fifth.is_alive()  # a whole batch uncommitted: the fifth row waits
        fifth.join(10)
        assert not fifth.is_alive()
        assert store.writer_wait_s > 0.0
    assert _count(db, "tasks") == 5


def test_background_commit_needs_real_time(tmp_path):
    with pytest.raises(TraceError, match="background_flush"):
        TraceStore(tmp_path / "t.db", background_flush=False, background_commit=True)
