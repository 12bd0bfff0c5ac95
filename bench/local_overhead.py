"""What the runtime's local task path costs over a plain onnxruntime loop with the same exits.

On the embedded MNIST bundle, one image per task, every task local (the daemon's default: no peer),
in one run with rounds interleaved (order rotated each round):

- ``device_loop``: ``DeviceLoop.process`` as the daemon runs it, built by ``Pipeline`` with the
  static local-only action, the controller (an interval closed and a transition logged per task)
  and a durable SQLite trace store (the daemon's ``[traces]`` defaults: batch 64, 1 s);
- ``device_loop_thread_writer``: the same with the trace store's writer as a thread of this process
  (``StoreSettings(writer="thread")``, what the daemon used before the writer process);
- ``device_loop_no_traces``: the same without a trace store, to show what the rows cost;
- ``executor``: ``Executor.run`` alone (checks, timing, exits);
- ``plain_onnxruntime``: the floor: the same segment files as onnxruntime sessions with the same
  session options, the same early-exit rule (normalised entropy of each head < its threshold),
  written as a bare loop with no checks, timing or bookkeeping.

The outputs are checked equal (same exit, same class) on every image before timing. Reported:
microseconds per task (median and minimum over rounds) and the ratio of each to the plain loop
(median of per-round ratios, and of the minimums), the same in CPU time of the whole process (every
thread, the trace writer thread's included, and the trace writer process's: ``cpu_us_per_task`` adds it,
``writer_process_cpu_us_per_task`` shows it alone), and how long the traced loop's tasks waited, on
average, for the trace writer to commit (the durability bound: at most one batch uncommitted). The
acceptance is device_loop <= 1.2x.
Prints one JSON document.

    .venv/bin/python bench/local_overhead.py [--rounds 30] [--calls 200]
"""
import argparse
import collections
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from edgesplit.runtime.bundle.store import load_bundle
from edgesplit.runtime.controller.reward import Bounds
from edgesplit.runtime.controller.strategies import local_only
from edgesplit.runtime.default_bundle import default_bundle_path
from edgesplit.runtime.device.pipeline import Pipeline, PipelineSettings, StoreSettings
from edgesplit.runtime.executor.executor import Executor
from edgesplit.runtime.segments.onnx_runner import session_options, threads_for
from timing import paired_ratio

TARGET_RATIO = 1.2
ASSETS = Path(__file__).resolve().parents[1] / "runtime" / "assets" / "mnist_heldout.npz"


def plain_loop(bundle) -> Callable[[np.ndarray], Tuple[int, int]]:
    """A bare onnxruntime loop over the bundle's segment files with the bundle's exit rule."""
    import onnxruntime as ort

    manifest = bundle.manifest

    def session(segment):
        return ort.InferenceSession(str(bundle.path_of(segment.id)),
                                    sess_options=session_options(threads_for(segment.macs)),
                                    providers=["CPUExecutionProvider"])

    steps = []  # per cut: (main session, its inputs, outputs, [(head session, inputs, score name, threshold, exit id)])
    for cut_id, segment in enumerate(manifest.main):
        heads = []
        for ex in manifest.exits_at(cut_id + 1):
            if ex.head is not None:
                head = manifest.segment(ex.head)
                heads.append((session(head), [t.name for t in head.inputs], head.outputs[0].name, ex.threshold, ex.id))
        steps.append((session(segment), [t.name for t in segment.inputs], [t.name for t in segment.outputs], heads))
    first, final = manifest.inputs[0].name, manifest.exits[-1].id

    def entropy(scores: np.ndarray) -> float:
        z = scores.astype(np.float64).reshape(-1)
        z = z - z.max()
        e = np.exp(z)
        total = e.sum()
        return float((math.log(total) - (e * z).sum() / total) / math.log(z.size))

    def run(x: np.ndarray) -> Tuple[int, int]:
        env = {first: x}
        out = None
        for main, inputs, outputs, heads in steps:
            env.update(zip(outputs, main.run(outputs, {n: env[n] for n in inputs})))
            for head, head_inputs, score, threshold, exit_id in heads:
                scores = head.run([score], {n: env[n] for n in head_inputs})[0]
                if entropy(scores) < threshold:
                    return exit_id, int(np.argmax(scores))
            out = env[outputs[0]]
        return final, int(np.argmax(out))

    return run


def process_cpu_s(pid: Optional[int]) -> float:
    """CPU seconds of every thread of another process (schedstat: nanoseconds on a core); 0 without one."""
    if pid is None:
        return 0.0
    total = 0.0
    folder = "/proc/%d/task" % pid
    for task in os.listdir(folder):
        try:
            with open(os.path.join(folder, task, "schedstat")) as handle:
                total += int(handle.read().split()[0]) / 1e9
        except (OSError, IndexError, ValueError):
            continue  # a thread that ended meanwhile
    return total


def per_call(fn: Callable[[int], object], calls: int, offset: int,
             writer_pid: Optional[int] = None) -> Tuple[float, float, float]:
    """Seconds per call: wall, CPU of this process (every thread: a trace writer thread's too), and CPU of the
    trace writer process (``writer_pid``)."""
    start, cpu, child = time.perf_counter(), time.process_time(), process_cpu_s(writer_pid)
    for i in range(calls):
        fn(offset + i)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return wall / calls, cpu / calls, (process_cpu_s(writer_pid) - child) / calls


def interleaved(fns: Dict[str, Callable[[int], object]], rounds: int, calls: int,
                writers: Dict[str, int]) -> Tuple[Dict[str, List[float]], Dict[str, List[float]], Dict[str, List[float]]]:
    """Per configuration and round: wall and CPU seconds per call, and the writer process's CPU per call."""
    names = list(fns)
    for name in names:
        per_call(fns[name], calls, 0)  # warm-up, not counted
    samples = {name: [] for name in names}  # type: Dict[str, List[float]]
    cpu = {name: [] for name in names}  # type: Dict[str, List[float]]
    child = {name: [] for name in names}  # type: Dict[str, List[float]]
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            wall_s, cpu_s, child_s = per_call(fns[name], calls, (r + 1) * calls, writers.get(name))
            samples[name].append(wall_s)
            cpu[name].append(cpu_s + child_s)
            child[name].append(child_s)
    return samples, cpu, child



def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30, help="interleaved rounds")
    parser.add_argument("--calls", type=int, default=200, help="tasks per configuration per round")
    parser.add_argument("--batch-size", type=int, default=64,
                        help="the trace store's batch (the daemon's [traces] batch_size, 64 by default): at most "
                             "this many rows are uncommitted, so the disk's commit latency bounds the task rate")
    args = parser.parse_args(argv)

    images = np.load(str(ASSETS))["images"]
    bundle = load_bundle(default_bundle_path())
    manifest = bundle.manifest
    side = [e.threshold for e in manifest.exits if e.head is not None]
    bounds = Bounds(1.0, float("inf"))
    work = tempfile.mkdtemp(prefix="edgesplit-local-bench-")
    traced = Pipeline(bundle, local_only(len(side), len(manifest.main), side), bounds, PipelineSettings(
        deadline_s=1.0, store=StoreSettings(os.path.join(work, "traces.db"), batch_size=args.batch_size, flush_interval_s=1.0)))
    thread_traced = Pipeline(bundle, local_only(len(side), len(manifest.main), side), bounds, PipelineSettings(
        deadline_s=1.0, store=StoreSettings(os.path.join(work, "traces-thread.db"), batch_size=args.batch_size,
                                            flush_interval_s=1.0, writer="thread")))
    untraced = Pipeline(bundle, local_only(len(side), len(manifest.main), side), bounds,
                        PipelineSettings(deadline_s=1.0))
    for pipeline in (traced, thread_traced, untraced):
        pipeline.loop.results = []
        # As the daemon keeps them (serving.py): the recent decisions only, not one per task for ever.
        pipeline.controller.decisions = collections.deque(maxlen=64)
    executor = Executor(bundle)
    plain = plain_loop(bundle)
    task_ids = iter(range(10 ** 9))

    def image(i: int) -> np.ndarray:
        return images[i % len(images)][None]

    def device(pipeline: Pipeline) -> Callable[[int], object]:
        loop = pipeline.loop

        def run(i: int) -> object:
            result = loop.process(next(task_ids), image(i))
            loop.results.clear()  # a daemon keeps only the latest (serving.py)
            return result
        return run

    # Same answers everywhere before any timing: the floor must do the same work.
    mismatches = 0
    for i in range(len(images)):
        want = plain(image(i))
        got = executor.run(image(i))
        got_loop = traced.loop.process(next(task_ids), image(i))
        if (got.exit_id, int(np.argmax(got.output))) != want or (got_loop.exit_id, got_loop.result) != want:
            mismatches += 1
    traced.loop.results.clear()

    fns = {"device_loop": device(traced), "device_loop_thread_writer": device(thread_traced),
           "device_loop_no_traces": device(untraced),
           "executor": lambda i: executor.run(image(i)), "plain_onnxruntime": lambda i: plain(image(i))}
    writers = {"device_loop": getattr(traced.store, "writer_pid", None)}
    waited_before = {name: pipeline.store.writer_wait_s for name, pipeline in
                     (("device_loop", traced), ("device_loop_thread_writer", thread_traced))}
    try:
        samples, cpu, child = interleaved(fns, args.rounds, args.calls, {k: v for k, v in writers.items() if v})
        traced.store.flush()
        thread_traced.store.flush()
        committed = {"device_loop": traced.store.committed_rows,
                     "device_loop_thread_writer": thread_traced.store.committed_rows}
        # Tasks that waited for the trace writer (a whole batch uncommitted: the writer's commits are slower).
        waited = {name: store.writer_wait_s - waited_before[name] for name, store in
                  (("device_loop", traced.store), ("device_loop_thread_writer", thread_traced.store))}
    finally:
        traced.close()
        thread_traced.close()
        untraced.close()
    ratio = paired_ratio(samples, "device_loop", "plain_onnxruntime")
    print(json.dumps({
        "bench": "local_overhead",
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "rounds": args.rounds,
        "calls_per_round": args.calls,
        "trace_batch_size": args.batch_size,
        "us_per_task": {name: {"median": round(1e6 * statistics.median(v), 1), "min": round(1e6 * min(v), 1)}
                        for name, v in samples.items()},
        "ratio_over_plain_onnxruntime": {name: paired_ratio(samples, name, "plain_onnxruntime")
                                         for name in fns if name != "plain_onnxruntime"},
        # The same in CPU seconds of the whole process: less moved by a busy machine than wall time.
        "cpu_us_per_task": {name: round(1e6 * statistics.median(v), 1) for name, v in cpu.items()},
        "cpu_ratio_over_plain_onnxruntime": {name: paired_ratio(cpu, name, "plain_onnxruntime")
                                             for name in fns if name != "plain_onnxruntime"},
        "writer_process_cpu_us_per_task": {name: round(1e6 * statistics.median(child[name]), 1) for name in writers},
        "answers_differing_from_plain_loop": mismatches,
        "trace_rows_committed": committed,
        "waited_for_trace_writer_us_per_task": {name: round(1e6 * seconds / ((args.rounds + 1) * args.calls), 1)
                                                for name, seconds in waited.items()},
        "target_ratio": TARGET_RATIO,
        "meets_target": bool(ratio["median_of_rounds"] <= TARGET_RATIO and mismatches == 0),
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
