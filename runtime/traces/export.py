"""Reading a trace database: summaries and exports (JSONL, CSV, npz, Parquet) for off-board training.

Readers open the file read-only, inside one read transaction (a consistent snapshot even while the
daemon keeps writing), and refuse anything that is not an edgesplit trace database of this schema
version or an older one. A column a later version added (``ADDED_COLUMNS``) reads as NULL from an
older file, so every export has the same layout. Exports are atomic: written to a temporary sibling,
fsynced, then renamed over ``out``. CSV and Parquet hold the flat, typed table of
``edgesplit.runtime.traces.flat`` (one column per segment time, entropy, state feature...); JSONL
keeps the JSON columns nested. Parquet needs pyarrow, a workstation package the board need not have.
"""
import csv
import io
import json
import math
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from edgesplit.policies_lite.files import atomic_write
from edgesplit.runtime.traces.errors import TraceError
from edgesplit.runtime.traces.flat import BOOL, FLOAT, INT, FlatTable, flat_table
from edgesplit.runtime.traces.schema import ADDED_COLUMNS, DATA_TABLES, JSON_COLUMNS, SCHEMA_VERSION, check_identity

FORMATS = ("jsonl", "csv", "npz", "parquet")
PathLike = Union[str, Path]


@contextmanager
def open_readonly(path: PathLike) -> Iterator[sqlite3.Connection]:
    path = Path(path)
    if not path.exists():
        raise TraceError("%s: no such trace database" % path)
    if not path.is_file():
        raise TraceError("%s: not a file" % path)
    try:
        conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise TraceError("%s: cannot open (%s)" % (path, exc)) from None
    try:
        version = check_identity(conn, str(path))
        if version == 0:
            raise TraceError("%s: an empty SQLite file, not a trace database" % path)
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("ROLLBACK")
    except sqlite3.DatabaseError as exc:
        raise TraceError("%s: damaged or unreadable trace database (%s)" % (path, exc)) from None
    finally:
        conn.close()


def check_run(conn: sqlite3.Connection, path: PathLike, run_id: str) -> str:
    """The full id of the run ``run_id`` names (the whole id, or a prefix of one run's only: the 8 or 12 characters
    that summaries print); refuse one this file does not hold, naming the runs it does (an export would be empty)."""
    ids = [row[0] for row in conn.execute("SELECT run_id FROM runs ORDER BY started_s")]
    if run_id in ids:
        return run_id
    matches = [i for i in ids if run_id and i.startswith(run_id)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise TraceError("%s: run %r is the start of %d runs' ids (%s): give more of it"
                         % (path, run_id, len(matches), ", ".join(matches)))
    raise TraceError("%s: no run %r; runs in this file: %s" % (path, run_id, ", ".join(ids) or "none yet"))


def dropped_rows(conn: sqlite3.Connection) -> Dict[str, int]:
    return {name: int(rows) for name, rows in conn.execute("SELECT table_name, rows FROM dropped")}


def summarize(path: PathLike) -> Dict[str, Any]:
    """Rows per table, runs, and how many rows the size cap dropped."""
    with open_readonly(path) as conn:
        counts = {t: conn.execute("SELECT count(*) FROM %s" % t).fetchone()[0] for t in ("runs",) + DATA_TABLES}
        runs = []
        for run_id, started, board, bundle_hash in conn.execute(
                "SELECT run_id, started_s, board, bundle_hash FROM runs ORDER BY started_s"):
            runs.append({"run_id": run_id, "started_s": started, "board": board, "bundle_hash": bundle_hash,
                         "tasks": conn.execute("SELECT count(*) FROM tasks WHERE run_id = ?", (run_id,)).fetchone()[0],
                         "transitions": conn.execute("SELECT count(*) FROM transitions WHERE run_id = ?",
                                                     (run_id,)).fetchone()[0]})
        labelled = conn.execute("SELECT count(*) FROM tasks WHERE label IS NOT NULL").fetchone()[0]
        rated = (conn.execute("SELECT count(*) FROM tasks WHERE rating IS NOT NULL").fetchone()[0]
                 if "rating" in _column_names(conn, "tasks") else 0)
        fallbacks = conn.execute("SELECT count(*) FROM tasks WHERE fallback != 0").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        return {"path": str(path), "schema_version": version, "rows": counts,
                "dropped": dropped_rows(conn), "labelled_tasks": labelled, "rated_tasks": rated,
                "fallback_tasks": fallbacks, "runs": runs, "policies": policy_outcomes(conn)}


def policy_outcomes(conn: sqlite3.Connection) -> List[Dict[str, Any]]:
    """Per policy that decided tasks, in the order each first served: tasks, the share that met their deadline
    (tasks that had one), accuracy over the labelled ones, fallbacks, mean and p95 latency. What an operator reads
    to see whether a new policy does better on the board than the last one (the tasks the daemon answered; a task
    that expired in the queue has no row)."""
    outcomes = []
    query = ("SELECT policy_id, MIN(seq), count(*), "
             "sum(CASE WHEN deadline_s IS NOT NULL THEN 1 ELSE 0 END), "
             "sum(CASE WHEN deadline_s IS NOT NULL AND latency_s IS NOT NULL AND arrival_s + latency_s <= deadline_s + 1e-9 "
             "THEN 1 ELSE 0 END), "
             "sum(CASE WHEN label IS NOT NULL AND result IS NOT NULL THEN 1 ELSE 0 END), "
             "sum(CASE WHEN label IS NOT NULL AND result = label THEN 1 ELSE 0 END), "
             "sum(CASE WHEN fallback != 0 THEN 1 ELSE 0 END), avg(latency_s) "
             "FROM tasks GROUP BY policy_id ORDER BY MIN(seq)")
    for policy_id, _, tasks, with_deadline, met, labelled, correct, fallbacks, mean_latency in conn.execute(query):
        latencies = sorted(row[0] for row in conn.execute(
            "SELECT latency_s FROM tasks WHERE policy_id IS ? AND latency_s IS NOT NULL", (policy_id,)))
        p95 = latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))] if latencies else None
        outcomes.append({"policy_id": policy_id, "tasks": tasks, "with_deadline": with_deadline,
                         "deadline_met": met / with_deadline if with_deadline else None,
                         "labelled": labelled, "accuracy": correct / labelled if labelled else None,
                         "fallbacks": fallbacks, "mean_latency_ms": None if mean_latency is None else 1e3 * mean_latency,
                         "p95_latency_ms": None if p95 is None else 1e3 * p95})
    return outcomes


# ---------------------------------------------------------------- rows


def _column_names(conn: sqlite3.Connection, table: str) -> List[str]:
    return [row[1] for row in conn.execute("PRAGMA table_info(%s)" % table)]


def _select(conn: sqlite3.Connection, table: str, run_id: Optional[str]):
    if table not in DATA_TABLES:
        raise TraceError("unknown table %r: expected one of %s" % (table, ", ".join(DATA_TABLES)))
    present = _column_names(conn, table)
    missing = [name for name in ADDED_COLUMNS.get(table, ()) if name not in present]
    sql = "SELECT *%s FROM %s" % ("".join(", NULL AS %s" % name for name in missing), table)
    params = ()  # type: Tuple[Any, ...]
    if run_id is not None:
        sql += " WHERE run_id = ?"
        params = (run_id,)
    cursor = conn.execute(sql + " ORDER BY seq", params)
    return [d[0] for d in cursor.description], cursor


def _decoded_rows(columns: Sequence[str], cursor, table: str) -> Iterator[Dict[str, Any]]:
    json_columns = set(JSON_COLUMNS.get(table, ()))
    for row in cursor:
        record = dict(zip(columns, row))
        for name in json_columns:
            record[name] = json.loads(record[name])
        yield record


def _flatten(value: Any, prefix: str, out: List[Tuple[str, float]], where: str) -> None:
    """Numbers, lists and objects of numbers -> (name, float) pairs in stored order; null -> NaN."""
    if value is None:
        out.append((prefix, math.nan))
    elif isinstance(value, bool) or isinstance(value, (int, float)):
        out.append((prefix, float(value)))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _flatten(item, "%s[%d]" % (prefix, i), out, where)
    elif isinstance(value, dict):
        for key, item in value.items():
            _flatten(item, "%s.%s" % (prefix, key) if prefix else key, out, where)
    else:
        raise TraceError("%s: %r is not numeric: the npz export needs numbers (or lists/objects of them)"
                         % (where, value))


def transitions_arrays(conn: sqlite3.Connection, run_id: Optional[str] = None) -> Dict[str, np.ndarray]:
    """Transitions as training arrays: state (N, d), action (N, a), reward (N,), next_state (N, d), ..."""
    columns, cursor = _select(conn, "transitions", run_id)
    states, actions, next_states = [], [], []
    rewards, steps, times, runs, policies = [], [], [], [], []
    action_names = None  # type: Optional[List[str]]
    for record in _decoded_rows(columns, cursor, "transitions"):
        where = "transitions run %s step %s" % (record["run_id"], record["step"])
        flat = []  # type: List[Tuple[str, float]]
        _flatten(record["action"], "", flat, where + " action")
        names = [name or "action" for name, _ in flat]
        if action_names is None:
            action_names = names
        elif names != action_names:
            raise TraceError("%s: action layout %s differs from the first row's %s: export one run or one "
                             "policy at a time (--run)" % (where, names, action_names))
        state, next_state = [], []  # type: List[Tuple[str, float]], List[Tuple[str, float]]
        _flatten(record["state"], "", state, where + " state")
        _flatten(record["next_state"], "", next_state, where + " next_state")
        if states and (len(state) != len(states[0]) or len(next_state) != len(states[0])):
            raise TraceError("%s: state has %d values, next_state %d, the first row %d: export one run at a time "
                             "(--run)" % (where, len(state), len(next_state), len(states[0])))
        states.append([v for _, v in state])
        next_states.append([v for _, v in next_state])
        actions.append([v for _, v in flat])
        rewards.append(record["reward"])
        steps.append(record["step"])
        times.append(record["time_s"])
        runs.append(record["run_id"])
        policies.append(record["policy_id"] or "")
    n = len(rewards)
    d = len(states[0]) if states else 0
    return {
        "state": np.array(states, dtype=np.float64).reshape(n, d),
        "action": np.array(actions, dtype=np.float64).reshape(n, len(action_names or [])),
        "reward": np.array(rewards, dtype=np.float64),
        "next_state": np.array(next_states, dtype=np.float64).reshape(n, d),
        "step": np.array(steps, dtype=np.int64),
        "time_s": np.array(times, dtype=np.float64),
        "run_id": np.array(runs, dtype=str).reshape(n),
        "policy_id": np.array(policies, dtype=str).reshape(n),
        "action_names": np.array(action_names or [], dtype=str),
    }


_INT_COLUMNS = ("seq", "task_id", "bytes_sent", "fallback")
_TEXT_COLUMNS = ("run_id", "policy_id", "arm", "segment_times", "entropies")


def tasks_arrays(conn: sqlite3.Connection, run_id: Optional[str] = None) -> Dict[str, np.ndarray]:
    """Tasks column by column: integers as int64, nullable numbers as float64 with NaN, text as str."""
    columns, cursor = _select(conn, "tasks", run_id)
    rows = cursor.fetchall()
    arrays = {}
    for i, name in enumerate(columns):
        values = [row[i] for row in rows]
        if name in _TEXT_COLUMNS:
            arrays[name] = np.array(["" if v is None else v for v in values], dtype=str).reshape(len(rows))
        elif name in _INT_COLUMNS:
            arrays[name] = np.array(values, dtype=np.int64)
        else:
            arrays[name] = np.array([math.nan if v is None else v for v in values], dtype=np.float64)
    return arrays


# ---------------------------------------------------------------- files


def _atomic_output(out: Path, binary: bool):
    directory = out.parent if str(out.parent) else Path(".")
    if not directory.is_dir():
        raise TraceError("%s: directory %s does not exist: create it (mkdir -p %s) or write elsewhere"
                         % (out, directory, directory))
    return atomic_write(out, binary=binary)


def export(path: PathLike, out: PathLike, fmt: str, table: Optional[str] = None,
           run_id: Optional[str] = None) -> Dict[str, Any]:
    """Write one table to ``out``; return what was written (rows, table, dropped count)."""
    if fmt not in FORMATS:
        raise TraceError("unknown format %r: expected one of %s" % (fmt, ", ".join(FORMATS)))
    table = table or ("transitions" if fmt == "npz" else "tasks")
    if table not in DATA_TABLES:
        raise TraceError("unknown table %r: expected one of %s" % (table, ", ".join(DATA_TABLES)))
    out = Path(out)
    with open_readonly(path) as conn:
        if run_id is not None:
            run_id = check_run(conn, path, run_id)  # before the output is opened: nothing is written
        dropped = dropped_rows(conn).get(table, 0)
        if fmt == "npz":
            arrays = transitions_arrays(conn, run_id) if table == "transitions" else tasks_arrays(conn, run_id)
            arrays["dropped_rows"] = np.array(dropped, dtype=np.int64)
            arrays["schema_version"] = np.array(SCHEMA_VERSION, dtype=np.int64)
            rows = int(arrays["seq"].shape[0]) if table == "tasks" else int(arrays["reward"].shape[0])
            with _atomic_output(out, binary=True) as handle:
                np.savez(handle, **arrays)
        elif fmt == "jsonl":
            columns, cursor = _select(conn, table, run_id)
            with _atomic_output(out, binary=False) as handle:
                rows = _write_jsonl(handle, columns, cursor, table)
        else:
            pyarrow = _pyarrow() if fmt == "parquet" else None  # before reading: say what is missing first
            columns, cursor = _select(conn, table, run_id)
            flat = flat_table(conn, table, columns, cursor)
            rows = len(flat.rows)
            if fmt == "csv":
                with _atomic_output(out, binary=False) as handle:
                    _write_csv(handle, flat)
            else:
                _write_parquet(pyarrow, out, flat, {"schema_version": SCHEMA_VERSION, "table": table,
                                                    "dropped_rows": dropped, "run_id": run_id})
    return {"table": table, "format": fmt, "rows": rows, "dropped_rows": dropped, "out": str(out)}


def _write_jsonl(handle: io.TextIOBase, columns: Sequence[str], cursor, table: str) -> int:
    rows = 0
    for record in _decoded_rows(columns, cursor, table):
        handle.write(json.dumps(record, separators=(",", ":")) + "\n")
        rows += 1
    return rows


def _write_csv(handle: io.TextIOBase, flat: FlatTable) -> None:
    writer = csv.writer(handle)
    writer.writerow(flat.columns)
    for row in flat.rows:  # null -> empty cell; booleans as 0/1 like SQLite stores them
        writer.writerow(["" if row.get(c) is None else int(row[c]) if flat.types[c] == BOOL else row[c]
                         for c in flat.columns])


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401  (the submodule is not imported by ``import pyarrow``)
    except ImportError:
        raise TraceError("--format parquet needs pyarrow, a workstation package: pip install 'edgesplit[parquet]' "
                         "(or pip install pyarrow) where you analyse the traces, or export --format csv/jsonl "
                         "here and convert there") from None
    return pyarrow


def _write_parquet(pa, out: Path, flat: FlatTable, metadata: Dict[str, Any]) -> None:
    types = {INT: pa.int64(), FLOAT: pa.float64(), BOOL: pa.bool_()}
    arrays = [pa.array(flat.column(c), type=types.get(flat.types[c], pa.string())) for c in flat.columns]
    schema = pa.schema([pa.field(c, a.type) for c, a in zip(flat.columns, arrays)],
                       metadata={"edgesplit": json.dumps(metadata)})
    with _atomic_output(out, binary=True) as handle:
        pa.parquet.write_table(pa.Table.from_arrays(arrays, schema=schema), handle)
