"""A daemon-like process: logs rows through a ProcessTraceStore until SIGTERM, then closes the store and exits.

    python process_store_child.py DB

SIGTERM is handled as the daemon handles it (close the store, then exit 0); the test sends it to the whole
process group, writer process included, as systemd does to a unit's control group. On exit it prints
"logged <tasks> <transitions>": the rows the database must hold.
"""
import signal
import sys
import time

from edgesplit.runtime.traces.writer_process import ProcessTraceStore

stopping = False


def stop(signum, frame):
    global stopping
    stopping = True


def main():
    signal.signal(signal.SIGTERM, stop)
    store = ProcessTraceStore(sys.argv[1], batch_size=64, flush_interval_s=5.0)
    run_id = store.start_run(board="test-child")
    sys.stdout.write("ready %d\n" % store.writer_pid)
    sys.stdout.flush()
    tasks = transitions = 0
    while not stopping:
        store.log_task_values((run_id, tasks, time.perf_counter(), None, 1, None, {"s0": 1e-4}, 0, None,
                               [(0, 0.5)], None, False, tasks % 10, None, None, 1e-4, "p", 0.0, None))
        tasks += 1
        if tasks % 2 == 0:
            store.log_transition_values((run_id, transitions, time.perf_counter(), (0.1, 0.2), [1], 0.5,
                                         (0.2, 0.3), "p"))
            transitions += 1
        if tasks % 100 == 0:
            time.sleep(0.001)
    store.close()
    sys.stdout.write("logged %d %d\n" % (tasks, transitions))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
