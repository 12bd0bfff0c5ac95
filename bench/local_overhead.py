"""What the runtime's local task path costs over a plain onnxruntime loop with the same exits.

On the embedded MNIST bundle, one image per task, every task local (the daemon's default: no peer),
in one run with rounds interleaved (order rotated each round):

- ``device_loop``: ``DeviceLoop.process`` as the daemon runs it, built by ``Pipeline`` with the
  static local-only action, the controller (an interval closed and a transition logged per task)
  and a durable SQLite trace store (the daemon's ``[traces]`` defaults: batch 64, 1 s);
- ``device_loop_no_traces``: the same without a trace store, to show what the rows cost;
- ``executor``: ``Executor.run`` alone (checks, timing, exits);
- ``plain_onnxruntime``: the floor: the same segment files as onnxruntime sessions with the same
  session options, the same early-exit rule (normalised entropy of each head < its threshold),
  written as a bare loop with no checks, timing or bookkeeping.

The outputs are checked equal (same exit, same class) on every image before timing. Reported:
microseconds per task (median and minimum over rounds) and the ratio of each to the plain loop
(median of per-round ratios, and of the minimums), the same in CPU time of the whole process (every
thread, the trace writer's included), and how long the traced loop's tasks waited, on
average, for the trace writer to commit (the durability bound: at most one batch uncommitted). The
acceptance is device_loop <= 1.2x.
Prints one JSON document.

    .venv/bin/python bench/local_overhead.py [--rounds 30] [--calls 200]
"""
import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

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


def per_call(fn: Callable[[int], object], calls: int, offset: int) -> Tuple[float, float]:
    """Seconds per call: wall, and CPU of the whole process (every thread: the trace writer's too)."""
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(calls):
        fn(offset + i)
    return (time.perf_counter() - start) / calls, (time.process_time() - cpu) / calls


def interleaved(fns: Dict[str, Callable[[int], object]], rounds: int,
                calls: int) -> Tuple[Dict[str, List[float]], Dict[str, List[float]]]:
    names = list(fns)
    for name in names:
        per_call(fns[name], calls, 0)  # warm-up, not counted
    samples = {name: [] for name in names}  # type: Dict[str, List[float]]
    cpu = {name: [] for name in names}  # type: Dict[str, List[float]]
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            wall_s, cpu_s = per_call(fns[name], calls, (r + 1) * calls)
            samples[name].append(wall_s)
            cpu[name].append(cpu_s)
    return samples, cpu



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
    untraced = Pipeline(bundle, local_only(len(side), len(manifest.main), side), bounds,
                        PipelineSettings(deadline_s=1.0))
    for pipeline in (traced, untraced):
        pipeline.loop.results = []
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

    fns = {"device_loop": device(traced), "device_loop_no_traces": device(untraced),
           "executor": lambda i: executor.run(image(i)), "plain_onnxruntime": lambda i: plain(image(i))}
    waited_before = getattr(traced.store, "writer_wait_s", None)
    try:
        samples, cpu = interleaved(fns, args.rounds, args.calls)
        committed = traced.store.committed_rows if traced.store is not None else None
        # Tasks that waited for the trace writer (a whole batch uncommitted: the disk's commits are slower).
        waited = None if waited_before is None else traced.store.writer_wait_s - waited_before
    finally:
        traced.close()
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
        "answers_differing_from_plain_loop": mismatches,
        "trace_rows_committed": committed,
        "device_loop_waited_for_trace_writer_us_per_task":
            None if waited is None else round(1e6 * waited / ((args.rounds + 1) * args.calls), 1),
        "target_ratio": TARGET_RATIO,
        "meets_target": bool(ratio["median_of_rounds"] <= TARGET_RATIO and mismatches == 0),
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
