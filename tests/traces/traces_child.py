"""A process that logs tasks (and a transition every few tasks) until it is killed.

    python traces_child.py DB BATCH_SIZE [MAX_ROWS|-] [bg|-] [raw]

``bg``: the store commits from its writer thread (``background_commit``), as the daemon's does.
``raw``: rows go in as raw values (``log_task_values``), as the device loop's do.

After every commit it prints "committed <last task id>" and flushes stdout, so the parent knows
what the database must hold whenever it kills this process.
"""
import sys
import time

from edgesplit.runtime.traces import TaskRecord, TraceStore, TransitionRecord
from edgesplit.runtime.traces.store import TASK_FIELDS, TRANSITION_FIELDS


def report(store):
    if store.last_committed_task_id is None:  # the run row alone
        return
    sys.stdout.write("committed %d\n" % store.last_committed_task_id)
    sys.stdout.flush()


def main():
    db, batch_size = sys.argv[1], int(sys.argv[2])
    max_rows = int(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[3] != "-" else None
    background = len(sys.argv) > 4 and sys.argv[4] == "bg"
    raw = len(sys.argv) > 5 and sys.argv[5] == "raw"
    store = TraceStore(db, batch_size=batch_size, flush_interval_s=0.05, max_rows=max_rows, on_commit=report,
                       background_commit=background)
    store.start_run(board="test-child", bundle_hash="0" * 64, config={"batch_size": batch_size})
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    task_id = 0
    while True:
        task = TaskRecord(task_id=task_id, arrival_s=time.time(), latency_s=0.01, exit=task_id % 3, cut=1,
                          segment_times={"s0": 0.004, "s1": 0.006}, bytes_sent=4096, transfer_s=0.002,
                          entropies={"0": 0.7, "1": 0.2}, bandwidth_bps=8e6, result=task_id % 10, policy_id="p")
        if raw:
            store.log_task_values(tuple(getattr(task, name) for name in TASK_FIELDS))
        else:
            store.log_task(task)
        if task_id % 4 == 3:
            step = TransitionRecord(step=task_id // 4, time_s=time.time(), state=[0.1, 0.2, 0.3],
                                    action={"thresholds": [0.5, 0.5], "cut": 1, "interval": 2},
                                    reward=0.5, next_state=[0.2, 0.3, 0.4], policy_id="p")
            if raw:
                store.log_transition_values(tuple(getattr(step, name) for name in TRANSITION_FIELDS))
            else:
                store.log_transition(step)
        task_id += 1
        if task_id % 50 == 0:
            time.sleep(0.001)  # let the background flusher in now and then


if __name__ == "__main__":
    main()
