"""Parquet (and the flat CSV): typed, flat columns that pandas and DuckDB read without parsing JSON."""
import json

import numpy as np
import pytest

from edgesplit.runtime.cli import main
from edgesplit.runtime.traces import SCHEMA_VERSION, TaskRecord, TraceStore, TransitionRecord

pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow.parquet")


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "traces.db"
    with TraceStore(path, batch_size=4) as store:
        for run_id in ("run-a", "run-b"):
            store.start_run(board="pi4", bundle_hash="cd" * 32, config={}, run_id=run_id)
            for i in range(6):
                # Task 0 exits at the first exit: it never ran segment main1 nor reached exit 1.
                segments = {"main0": 0.01} if i == 0 else {"main0": 0.01, "main1": 0.02 + i / 1000}
                entropies = {"0": 0.1} if i == 0 else {"0": 0.4, "1": 0.05 * i}
                store.log_task(TaskRecord(task_id=i, arrival_s=i * 0.1, deadline_s=i * 0.1 + 0.3, exit=i % 2,
                                          cut=None if i % 3 == 0 else 1, segment_times=segments,
                                          bytes_sent=1000 * i, transfer_s=None if i % 3 == 0 else 0.001 * i,
                                          entropies=entropies, bandwidth_bps=6e6, fallback=i == 5, result=i,
                                          label=None if i % 2 else i, latency_s=0.05, policy_id="pol",
                                          run_id=run_id, energy=1.5 * i))
            for k in range(3):
                store.log_transition(TransitionRecord(
                    step=k, time_s=k * 0.5, state=[k, 2.0 * k], reward=-0.5 + k, run_id=run_id,
                    action={"thresholds": [0.1 * k, 0.2], "cut": k, "interval": 2},
                    next_state=[k + 1.0, 2.0 * k + 2], policy_id="pol"))
    return path


def _export(db, out, *extra):
    assert main(["traces", "export", str(db), "--format", "parquet", "--out", str(out)] + list(extra)) == 0
    return pd.read_parquet(str(out))


def test_tasks_parquet_has_typed_flat_columns(db, tmp_path):
    frame = _export(db, tmp_path / "tasks.parquet")
    assert len(frame) == 12
    assert {"segment_s.main0", "segment_s.main1", "entropy.0", "entropy.1"} <= set(frame.columns)
    assert "segment_times" not in frame.columns and "entropies" not in frame.columns
    assert frame["segment_s.main1"].dtype == np.float64 and frame["entropy.1"].dtype == np.float64
    assert frame["bytes_sent"].dtype == np.int64 and frame["fallback"].dtype == bool
    assert frame["run_id"].tolist() == ["run-a"] * 6 + ["run-b"] * 6
    first = frame.iloc[0]
    assert np.isnan(first["segment_s.main1"]) and np.isnan(first["entropy.1"])  # never reached: null
    assert frame.iloc[4]["segment_s.main1"] == pytest.approx(0.024) and frame.iloc[4]["entropy.1"] == pytest.approx(0.2)
    assert frame["cut"].isna().tolist() == [i % 3 == 0 for i in range(6)] * 2
    assert frame["fallback"].tolist() == [i == 5 for i in range(6)] * 2
    assert frame["energy"].tolist() == [1.5 * i for i in range(6)] * 2
    assert frame["arm"].isna().all()  # a text column (schema 4), null when no selector chose a variant


def test_an_older_database_exports_the_same_typed_columns(tmp_path):
    import sqlite3

    # A schema-1 file (no rating, energy, arm): the columns added since are null, with their own types.
    path = tmp_path / "v1.db"
    with TraceStore(path) as store:
        store.start_run(run_id="old")
        store.log_task(TaskRecord(task_id=0, arrival_s=0.0, segment_times={"main0": 0.01}, entropies={"0": 0.3}))
    with sqlite3.connect(str(path)) as conn:
        for column in ("rating", "energy", "arm"):
            conn.execute("ALTER TABLE tasks DROP COLUMN %s" % column)
        conn.execute("PRAGMA user_version = 1")
    frame = _export(path, tmp_path / "old.parquet")
    import pyarrow.parquet as pq

    schema = pq.read_schema(str(tmp_path / "old.parquet"))
    assert str(schema.field("arm").type) == "string" and str(schema.field("energy").type) == "double"
    assert frame["segment_s.main0"].tolist() == [0.01] and frame["rating"].isna().all()


def test_transitions_parquet_one_run_and_file_metadata(db, tmp_path):
    import pyarrow.parquet as pq

    out = tmp_path / "tr.parquet"
    frame = _export(db, out, "--table", "transitions", "--run", "run-b")
    assert frame["run_id"].unique().tolist() == ["run-b"] and frame["step"].tolist() == [0, 1, 2]
    assert frame["action.thresholds.0"].tolist() == pytest.approx([0.0, 0.1, 0.2])
    assert frame["action.cut"].tolist() == [0, 1, 2] and frame["next_state.1"].tolist() == [2.0, 4.0, 6.0]
    meta = json.loads(pq.read_schema(str(out)).metadata[b"edgesplit"])
    assert meta == {"schema_version": SCHEMA_VERSION, "table": "transitions", "dropped_rows": 0, "run_id": "run-b"}


def test_duckdb_reads_the_parquet_file(db, tmp_path):
    duckdb = pytest.importorskip("duckdb")
    out = tmp_path / "tasks.parquet"
    _export(db, out)
    with duckdb.connect() as conn:
        total, mean = conn.execute('SELECT count(*), avg("segment_s.main1") FROM read_parquet(?)', [str(out)]).fetchone()
    assert total == 12 and mean == pytest.approx(0.023)
