"""Where the local task path's microseconds over the executor go: the device loop with its trace rows taken apart.

``bench/local_overhead.py`` says how far the traced device loop is from a bare onnxruntime loop; this says which part
of the difference is what, by substitution, in one process, rounds interleaved (order rotated each round), timed with
this thread's CPU clock (``time.thread_time``: the task thread's own cost, not waiting for a core) and wall time:

- ``executor``: ``Executor.run`` alone;
- ``loop_no_rows``: ``DeviceLoop.process`` without a trace store (controller, results; the daemon's pipeline);
- ``loop_rows_to_a_list``: the same loop with a stand-in store that keeps each row's raw values in a list and drops
  them every half batch: building and queueing the two rows, no writer;
- ``loop_writer_process``: the daemon's trace store (``ProcessTraceStore``, batch 64: a hand-off to the writer every
  32 rows);
- ``loop_writer_process_batch_512``: the same with a hand-off every 256 rows (8x fewer): what the hand-offs cost.

Every loop runs the static local-only action with the controller and keeps the last 64 decisions, as the daemon
does. Prints one JSON document: per configuration the median microseconds per task (thread CPU and wall), and the
differences between neighbours.

    .venv/bin/python bench/local_overhead_parts.py [--rounds 20] [--calls 200]
"""
import argparse
import collections
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np

from edgesplit.runtime.bundle.store import load_bundle
from edgesplit.runtime.controller.reward import Bounds
from edgesplit.runtime.controller.strategies import local_only
from edgesplit.runtime.default_bundle import default_bundle_path
from edgesplit.runtime.device.pipeline import Pipeline, PipelineSettings, StoreSettings
from edgesplit.runtime.executor.executor import Executor

ASSETS = Path(__file__).resolve().parents[1] / "runtime" / "assets" / "mnist_heldout.npz"


class RowsToAList:
    """Takes the loop's and the controller's raw rows as the trace store does, keeps them in a list, drops them
    every ``keep`` rows: the rows' cost on the task's thread without any writer."""

    def __init__(self, keep: int):
        self.keep = keep
        self.rows = []  # type: List[tuple]
        self.run_id = "bench"

    def log_task_values(self, values: tuple) -> None:
        self._append("task", values)

    def log_transition_values(self, values: tuple) -> None:
        self._append("transition", values)

    def _append(self, table: str, values: tuple) -> None:
        self.rows.append((table, values, False))
        if len(self.rows) >= self.keep:
            self.rows = []


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20, help="interleaved rounds")
    parser.add_argument("--calls", type=int, default=200, help="tasks per configuration per round")
    args = parser.parse_args(argv)

    images = np.load(str(ASSETS))["images"]
    bundle = load_bundle(default_bundle_path())
    manifest = bundle.manifest
    side = [e.threshold for e in manifest.exits if e.head is not None]
    bounds = Bounds(1.0, float("inf"))
    work = tempfile.mkdtemp(prefix="edgesplit-parts-bench-")

    def pipeline(store=None) -> Pipeline:
        built = Pipeline(bundle, local_only(len(side), len(manifest.main), side), bounds,
                         PipelineSettings(deadline_s=1.0, store=store))
        built.loop.results = collections.deque(maxlen=1)  # as the daemon keeps them (serving.py)
        built.controller.decisions = collections.deque(maxlen=64)
        return built

    plain = pipeline()
    listed = pipeline()
    stand_in = RowsToAList(keep=32)
    listed.loop.store = listed.controller.store = stand_in
    listed.loop.run_id = listed.controller.run_id = stand_in.run_id
    traced = pipeline(StoreSettings(os.path.join(work, "t64.db"), batch_size=64, flush_interval_s=1.0))
    traced_512 = pipeline(StoreSettings(os.path.join(work, "t512.db"), batch_size=512, flush_interval_s=1.0))
    executor = Executor(bundle)
    task_ids = iter(range(10 ** 9))

    def image(i: int) -> np.ndarray:
        return images[i % len(images)][None]

    def device(built: Pipeline) -> Callable[[int], object]:
        loop = built.loop
        return lambda i: loop.process(next(task_ids), image(i))

    fns = collections.OrderedDict([
        ("executor", lambda i: executor.run(image(i))),
        ("loop_no_rows", device(plain)),
        ("loop_rows_to_a_list", device(listed)),
        ("loop_writer_process", device(traced)),
        ("loop_writer_process_batch_512", device(traced_512)),
    ])
    cpu = {name: [] for name in fns}  # type: Dict[str, List[float]]
    wall = {name: [] for name in fns}  # type: Dict[str, List[float]]
    names = list(fns)
    try:
        for name in names:  # warm-up, not counted
            for i in range(args.calls):
                fns[name](i)
        for r in range(args.rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                fn, offset = fns[name], (r + 1) * args.calls
                started, thread = time.perf_counter(), time.thread_time()
                for i in range(args.calls):
                    fn(offset + i)
                cpu[name].append(1e6 * (time.thread_time() - thread) / args.calls)
                wall[name].append(1e6 * (time.perf_counter() - started) / args.calls)
        waited = {"loop_writer_process": traced.store.writer_wait_s, "loop_writer_process_batch_512":
                  traced_512.store.writer_wait_s}
    finally:
        for built in (plain, listed, traced, traced_512):
            built.close()
    cpu_median = {name: statistics.median(v) for name, v in cpu.items()}
    steps = [("loop and controller over the executor", "loop_no_rows", "executor"),
             ("building and queueing the two rows", "loop_rows_to_a_list", "loop_no_rows"),
             ("the writer process's store over a list", "loop_writer_process", "loop_rows_to_a_list"),
             ("hand-offs every 32 rows over every 256", "loop_writer_process", "loop_writer_process_batch_512")]
    print(json.dumps({
        "bench": "local_overhead_parts",
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg()[0],
        "rounds": args.rounds,
        "calls_per_round": args.calls,
        "thread_cpu_us_per_task": {name: round(v, 1) for name, v in cpu_median.items()},
        "wall_us_per_task": {name: round(statistics.median(v), 1) for name, v in wall.items()},
        "thread_cpu_us_differences": {what: round(cpu_median[a] - cpu_median[b], 1) for what, a, b in steps},
        "waited_for_trace_writer_us_per_task": {
            name: round(1e6 * seconds / ((args.rounds + 1) * args.calls), 1) for name, seconds in waited.items()},
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
