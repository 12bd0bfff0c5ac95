"""Export round trips through the real CLI, and clean errors for files that are not trace databases."""
import csv
import json
import sqlite3
import subprocess
import sys

import numpy as np
import pytest

from edgesplit.runtime.cli import main
from edgesplit.runtime.traces import TaskRecord, TraceError, TraceStore, TransitionRecord, export
from edgesplit.runtime.traces.export import summarize


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "traces.db"
    with TraceStore(path, batch_size=4) as store:
        run = store.start_run(board="pi4", bundle_hash="cd" * 32, config={"bounds": [0.1, 1.2]}, run_id="run-a")
        for i in range(10):
            store.log_task(TaskRecord(task_id=i, arrival_s=i * 0.1, deadline_s=i * 0.1 + 0.3, exit=i % 3,
                                      cut=None if i % 4 == 0 else 1, segment_times={"s0": 0.01, "s1": 0.02},
                                      bytes_sent=1000 * i, transfer_s=0.001 * i, entropies={"0": 0.5},
                                      bandwidth_bps=6e6, fallback=i == 5, result=i % 10,
                                      label=None if i % 2 else i % 10, latency_s=0.05, policy_id="pol"))
        assert store.set_feedback(3, rating=4.5) and store.set_feedback(4, label=4, rating=-1)
        for k in range(6):
            store.log_transition(TransitionRecord(
                step=k, time_s=k * 0.5, state=np.array([k, k * 2.0, 3.0]), reward=-0.5 + k,
                action={"thresholds": (0.1 * k, 0.2), "cut": k % 3, "interval": 1 + k % 5},
                next_state=[k + 1.0, k * 2.0 + 2, 3.0], policy_id="pol"))
    assert run == "run-a"
    return path


def test_jsonl_round_trip(db, tmp_path, capsys):
    out = tmp_path / "tasks.jsonl"
    assert main(["traces", "export", str(db), "--format", "jsonl", "--out", str(out)]) == 0
    assert "wrote 10 tasks rows" in capsys.readouterr().out
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["task_id"] for r in rows] == list(range(10))
    assert rows[4]["cut"] is None and rows[5]["fallback"] == 1 and rows[1]["label"] is None
    assert rows[3]["segment_times"] == {"s0": 0.01, "s1": 0.02} and rows[3]["bytes_sent"] == 3000
    assert [r["rating"] for r in rows[2:5]] == [None, 4.5, -1.0]
    out2 = tmp_path / "tr.jsonl"
    assert main(["traces", "export", str(db), "--format", "jsonl", "--out", str(out2), "--table", "transitions"]) == 0
    first = json.loads(out2.read_text().splitlines()[2])
    assert first["action"] == {"thresholds": [0.2, 0.2], "cut": 2, "interval": 3} and first["state"] == [2, 4.0, 3.0]


def test_csv_round_trip(db, tmp_path):
    out = tmp_path / "tasks.csv"
    assert main(["traces", "export", str(db), "--format", "csv", "--out", str(out)]) == 0
    with open(str(out), newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 10 and rows[0]["run_id"] == "run-a"
    # Flat columns, not JSON text: one per segment time and per exit's entropy.
    assert "entropies" not in rows[0] and "segment_times" not in rows[0]
    assert rows[4]["cut"] == "" and float(rows[2]["entropy.0"]) == 0.5 and float(rows[2]["segment_s.s1"]) == 0.02
    assert rows[5]["fallback"] == "1" and rows[4]["fallback"] == "0"
    assert float(rows[7]["transfer_s"]) == pytest.approx(0.007)
    assert rows[3]["rating"] == "4.5" and rows[2]["rating"] == ""


def test_npz_transitions_for_training(db, tmp_path, capsys):
    out = tmp_path / "tr.npz"
    assert main(["traces", "export", str(db), "--format", "npz", "--out", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info == {"table": "transitions", "format": "npz", "rows": 6, "dropped_rows": 0, "out": str(out)}
    with np.load(str(out), allow_pickle=False) as npz:
        assert npz["state"].shape == (6, 3) and npz["next_state"].shape == (6, 3)
        assert npz["action"].shape == (6, 4)
        assert npz["action_names"].tolist() == ["thresholds[0]", "thresholds[1]", "cut", "interval"]
        np.testing.assert_allclose(npz["action"][3], [0.3, 0.2, 0.0, 4.0])
        np.testing.assert_allclose(npz["reward"], [-0.5 + k for k in range(6)])
        np.testing.assert_allclose(npz["state"][2], [2, 4, 3])
        assert npz["run_id"].tolist() == ["run-a"] * 6 and int(npz["dropped_rows"]) == 0


def test_npz_tasks_columns(db, tmp_path):
    out = tmp_path / "tasks.npz"
    export(db, out, "npz", table="tasks")
    with np.load(str(out), allow_pickle=False) as npz:
        assert npz["task_id"].tolist() == list(range(10))
        assert np.isnan(npz["cut"][0]) and npz["cut"][1] == 1
        assert np.isnan(npz["label"][1]) and npz["label"][2] == 2
        assert np.isnan(npz["rating"][2]) and npz["rating"][3] == 4.5 and npz["rating"][4] == -1.0


def test_a_version_1_file_exports_with_null_rating_and_energy_columns(tmp_path):
    from edgesplit.runtime.traces import schema

    db = tmp_path / "v1.db"
    conn = sqlite3.connect(str(db), isolation_level=None)
    conn.executescript(schema.SCHEMA_V1)
    conn.execute("PRAGMA application_id = %d" % schema.APPLICATION_ID)
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO tasks (run_id, task_id, arrival_s, label) VALUES ('r', 0, 1.0, 6)")
    conn.close()
    out = tmp_path / "tasks.jsonl"
    assert export(db, out, "jsonl")["rows"] == 1
    row = json.loads(out.read_text())
    assert row["label"] == 6 and row["rating"] is None and row["energy"] is None and row["arm"] is None
    assert list(row)[-3:] == ["rating", "energy", "arm"]
    export(db, tmp_path / "tasks.npz", "npz", table="tasks")
    with np.load(str(tmp_path / "tasks.npz"), allow_pickle=False) as npz:
        assert np.isnan(npz["rating"][0]) and np.isnan(npz["energy"][0])


def test_summary(db, capsys):
    assert main(["traces", "summary", str(db), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["rows"] == {"runs": 1, "tasks": 10, "transitions": 6}
    assert info["dropped"] == {"tasks": 0, "transitions": 0}
    assert info["labelled_tasks"] == 5 and info["rated_tasks"] == 2 and info["fallback_tasks"] == 1
    assert info["schema_version"] == 4
    assert info["runs"][0]["board"] == "pi4" and info["runs"][0]["tasks"] == 10
    assert main(["traces", "summary", str(db)]) == 0
    text = capsys.readouterr().out
    assert "transitions" in text and "run-a" in text


def test_dropped_rows_are_reported(tmp_path, capsys):
    db = tmp_path / "capped.db"
    with TraceStore(db, batch_size=5, max_rows=20) as store:
        store.start_run()
        for i in range(45):
            store.log_task(TaskRecord(task_id=i, arrival_s=i))
    out = tmp_path / "t.jsonl"
    assert main(["traces", "export", str(db), "--format", "jsonl", "--out", str(out)]) == 0
    assert "25 older rows were dropped" in capsys.readouterr().out
    assert len(out.read_text().splitlines()) == 20


def test_export_is_atomic_and_errors_are_clean(db, tmp_path, capsys):
    out = tmp_path / "keep.jsonl"
    out.write_text("previous export\n")
    # A transitions table with mixed state lengths cannot become arrays: the old file must survive.
    with TraceStore(db) as store:
        store.log_transition(TransitionRecord(step=99, time_s=0, state=[1.0], action=[0], reward=0, next_state=[1.0],
                                              run_id="run-a"))
    assert main(["traces", "export", str(db), "--format", "npz", "--out", str(out)]) == 1
    assert "step 99" in capsys.readouterr().err
    assert out.read_text() == "previous export\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["traces.db", "keep.jsonl"] + [
        p.name for p in tmp_path.iterdir() if p.name.startswith("traces.db-")])

    junk = tmp_path / "junk.db"
    junk.write_bytes(b"\x00garbage" * 100)
    other = tmp_path / "other.db"
    conn = sqlite3.connect(str(other))
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    for path, message in ((junk, "not an SQLite database"), (other, "not an edgesplit trace database"),
                          (tmp_path / "missing.db", "no such trace database")):
        assert main(["traces", "summary", str(path)]) == 1
        err = capsys.readouterr().err
        assert message in err and err.startswith("edgesplit traces: error:")
    assert not (tmp_path / "missing.db").exists()  # a reader never creates a database
    with pytest.raises(TraceError, match="directory"):
        export(db, tmp_path / "nodir" / "x.csv", "csv")


def test_the_arm_a_task_ran_on_is_stored_and_exported(tmp_path):
    from edgesplit.runtime.traces import TaskRecord, TraceStore

    db = tmp_path / "arms.db"
    with TraceStore(db) as store:
        store.start_run(run_id="r")
        store.log_task(TaskRecord(task_id=1, arrival_s=0.0, arm="int8"))
        store.log_task(TaskRecord(task_id=2, arrival_s=1.0))
    export(db, tmp_path / "tasks.jsonl", "jsonl")
    rows = [json.loads(line) for line in (tmp_path / "tasks.jsonl").read_text().splitlines()]
    assert [r["arm"] for r in rows] == ["int8", None]
    export(db, tmp_path / "tasks.npz", "npz", table="tasks")
    with np.load(str(tmp_path / "tasks.npz"), allow_pickle=False) as npz:
        assert list(npz["arm"]) == ["int8", ""]


def test_parquet_without_pyarrow_says_what_to_install(db, tmp_path):
    # Runs on the board's Python too (no pyarrow there): the file is never half-written.
    # The board's situation: pyarrow cannot be imported there (None in sys.modules blocks the import).
    code = ("import sys; sys.modules['pyarrow'] = None; from edgesplit.runtime.cli import main; "
            "sys.exit(main(['traces', 'export', %r, '--format', 'parquet', '--out', %r]))"
            % (str(db), str(tmp_path / "t.parquet")))
    proc = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.returncode == 1
    assert "needs pyarrow" in proc.stderr and "pip install 'edgesplit[parquet]'" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "t.parquet").exists()


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "npz"])
def test_an_unknown_run_is_refused_naming_the_runs_in_the_file_and_nothing_is_written(db, tmp_path, capsys, fmt):
    out = tmp_path / ("o." + fmt)
    assert main(["traces", "export", str(db), "--format", fmt, "--out", str(out), "--run", "nosuchrun"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == "edgesplit traces: error: %s: no run 'nosuchrun'; runs in this file: run-a" % db, err
    assert not out.exists()
    assert main(["traces", "export", str(db), "--format", fmt, "--out", str(out), "--run", "run-a"]) == 0


def test_a_run_is_named_by_the_start_of_its_id_as_summaries_print_it(db, tmp_path, capsys):
    out = tmp_path / "o.jsonl"
    assert main(["traces", "export", str(db), "--format", "jsonl", "--out", str(out), "--run", "run-"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows and {r["run_id"] for r in rows} == {"run-a"}
    missing = tmp_path / "nowhere" / "o.jsonl"
    assert main(["traces", "export", str(db), "--format", "jsonl", "--out", str(missing)]) == 1
    assert "create it (mkdir -p %s)" % missing.parent in capsys.readouterr().err


def test_summary_says_how_each_policy_did_in_the_order_it_served(tmp_path, capsys):
    # What an operator reads after a reload: did the new policy do better on this board than the last one?
    path = tmp_path / "two.db"
    with TraceStore(path, batch_size=4) as store:
        store.start_run(board="pi4", bundle_hash="cd" * 32, config={}, run_id="run-b")
        for i in range(10):  # the old policy: 6 of 10 within the 0.1 s deadline, labels on the even ones
            store.log_task(TaskRecord(task_id=i, arrival_s=float(i), deadline_s=i + 0.1, exit=1, cut=None,
                                      result=i % 3, label=None if i % 2 else 0, latency_s=0.05 if i < 6 else 0.2,
                                      fallback=i == 9, policy_id="old"))
        for i in range(10, 14):  # the new one: all in time, every label right
            store.log_task(TaskRecord(task_id=i, arrival_s=float(i), deadline_s=i + 0.1, exit=1, cut=None,
                                      result=2, label=2, latency_s=0.02, policy_id="new"))
    old, new = summarize(path)["policies"]
    assert (old["policy_id"], old["tasks"], old["deadline_met"], old["labelled"], old["fallbacks"]) == (
        "old", 10, 0.6, 5, 1)
    assert old["accuracy"] == pytest.approx(2 / 5)  # labels 0 on tasks 0,2,4,6,8: results 0,2,1,0,2
    assert (new["policy_id"], new["tasks"], new["deadline_met"], new["accuracy"]) == ("new", 4, 1.0, 1.0)
    assert new["mean_latency_ms"] == pytest.approx(20.0) and old["p95_latency_ms"] == pytest.approx(200.0)
    assert main(["traces", "summary", str(path)]) == 0
    out = capsys.readouterr().out
    assert "policy (in the order it served)" in out and "60.0%" in out and "40.0% (5)" in out and "100.0% (4)" in out


def test_a_database_kept_across_the_fifth_state_feature_exports_both_widths(tmp_path, capsys):
    # Runs before remote_share logged four state values, runs after it five; the flat formats write both (the older
    # rows' fifth column empty), the npz export (one width per array) asks for one run at a time.
    path = tmp_path / "upgraded.db"
    with TraceStore(path, batch_size=4) as store:
        for run_id, width in (("old-run", 4), ("new-run", 5)):
            store.start_run(board="pi4", bundle_hash="cd" * 32, config={"state_features": ["f"] * width},
                            run_id=run_id)
            for k in range(2):
                store.log_transition(TransitionRecord(step=k, time_s=k * 0.5, state=[float(k)] * width, reward=0.5,
                                                      action={"thresholds": (0.1, 0.2), "cut": 0, "interval": 1},
                                                      next_state=[k + 1.0] * width, policy_id="pol"))
    out = tmp_path / "tr.csv"
    assert main(["traces", "export", str(path), "--format", "csv", "--table", "transitions", "--out", str(out)]) == 0
    with open(str(out), newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["run_id"] for r in rows] == ["old-run"] * 2 + ["new-run"] * 2
    assert [r["state.4"] for r in rows] == ["", "", "0.0", "1.0"]
    capsys.readouterr()
    assert main(["traces", "export", str(path), "--format", "npz", "--out", str(tmp_path / "tr.npz")]) != 0
    assert "export one run at a time (--run)" in capsys.readouterr().err
    assert main(["traces", "export", str(path), "--format", "npz", "--run", "new-run",
                 "--out", str(tmp_path / "new.npz")]) == 0
    with np.load(str(tmp_path / "new.npz"), allow_pickle=False) as npz:
        assert npz["state"].shape == (2, 5)
