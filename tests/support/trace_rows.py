"""Trace rows for tests: raw values in the store's field order, the same as records, and a table read back."""
import sqlite3

import numpy as np

from edgesplit.runtime.traces import TaskRecord, TransitionRecord
from edgesplit.runtime.traces.store import TASK_FIELDS, TRANSITION_FIELDS


def rows(db, table):
    conn = sqlite3.connect(str(db))
    try:
        columns = [c for c in (r[1] for r in conn.execute("PRAGMA table_info(%s)" % table)) if c != "seq"]
        order = "seq" if table != "runs" else "run_id"
        return conn.execute("SELECT %s FROM %s ORDER BY %s" % (", ".join(columns), table, order)).fetchall()
    finally:
        conn.close()


def task_values(i, run_id="r1", **changes):
    values = dict(run_id=run_id, task_id=i, arrival_s=np.float64(i / 3.0), deadline_s=i / 3.0 + 0.1, exit=np.int64(2),
                  cut=None if i % 2 else 1, segment_times={"main0": i / 7.0, "head0": 1e-6}, bytes_sent=i * 10,
                  transfer_s=None if i % 2 else 0.002, entropies=[(0, 0.25), (2, np.float32(0.5))],
                  bandwidth_bps=float("nan") if i % 3 == 0 else 8e6, fallback=bool(i % 2), result=np.int64(i % 10),
                  label=None, rating=None, latency_s=0.01 * i, policy_id="static:local-only", energy=1.5, arm=None)
    values.update(changes)
    return tuple(values[name] for name in TASK_FIELDS)


def transition_values(i, run_id="r1", state=None, **changes):
    values = dict(run_id=run_id, step=i, time_s=i / 5.0, state=state if state is not None else [0.1, i / 3.0],
                  action={"thresholds": [0.5, 0.25], "cut": 3, "interval": 1, "use_exits": True},
                  reward=np.float64(-i / 11.0), next_state=[0.2, (i + 1) / 3.0], policy_id="static:local-only")
    values.update(changes)
    return tuple(values[name] for name in TRANSITION_FIELDS)


def as_records(task_values, transition_values):
    task = dict(zip(TASK_FIELDS, task_values))
    task["entropies"] = {str(e): h for e, h in task["entropies"]}
    return TaskRecord(**task), TransitionRecord(**dict(zip(TRANSITION_FIELDS, transition_values)))
