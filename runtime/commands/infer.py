"""``edgesplit infer``: run a bundle locally on the inputs in a .npy file, with early exits."""
import argparse
import time

import numpy as np

from edgesplit.policies_lite.files import atomic_write
from edgesplit.runtime.commands.output import print_json, print_table
from edgesplit.runtime.default_bundle import resolve_bundle
from edgesplit.runtime.errors import EdgesplitError
from edgesplit.runtime.executor.executor import Executor
from edgesplit.runtime.inputs import load_inputs, parse_thresholds
from edgesplit.runtime.segments.base import check_finite


def register(commands) -> None:
    parser = commands.add_parser(
        "infer",
        description="Run a bundle on this machine. Each row of INPUT.npy (first axis = batch) is one task: "
                    "the main branch runs segment by segment, each exit head is checked, and the task "
                    "stops at the first exit whose normalised softmax entropy is below its threshold. "
                    "OUT.npy gets the scores of the exit each task took, one row per task.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  edgesplit infer default images.npy --out scores.npy --thresholds 0.2,0.3 --json")
    parser.add_argument("bundle", help="bundle directory, or 'default' for the embedded MNIST bundle")
    parser.add_argument("input", help=".npy file of inputs with the batch axis first (dtype and shape as the "
                                      "bundle's manifest says)")
    parser.add_argument("--out", required=True, help="where to write the scores (.npy)")
    parser.add_argument("--thresholds", help="comma-separated entropy thresholds in [0,1], one per early exit "
                                             "(default: the manifest's)")
    parser.add_argument("--no-exits", action="store_true", help="ignore exit heads: run the whole main branch")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads per segment (default: 1 for "
                                                                   "small segments, all cores for large ones)")
    parser.add_argument("--json", action="store_true", help="print a JSON report (per task: exit, entropies, "
                                                            "segment times)")
    parser.set_defaults(handler=run_infer)


def run_infer(args) -> int:
    bundle = resolve_bundle(args.bundle)
    inputs = load_inputs(args.input)
    executor = Executor(bundle, threads=args.threads)
    thresholds = executor.thresholds_or_default(parse_thresholds(args.thresholds))
    executor.check_inputs({bundle.manifest.inputs[0].name: inputs[:1]})
    check_finite(bundle.manifest.inputs[0].name, inputs, args.input)
    tasks, outputs = [], []
    for row in range(inputs.shape[0]):
        started = time.perf_counter()
        result = executor.run(inputs[row:row + 1], thresholds=thresholds, use_exits=not args.no_exits)
        elapsed = time.perf_counter() - started
        outputs.append(result.output)
        tasks.append({
            "task": row,
            "exit": result.exit_id,
            "prediction": int(np.argmax(result.output[0])),
            "entropies": {str(e): round(h, 6) for e, h in result.entropies},
            "segment_ms": {k: round(v * 1e3, 4) for k, v in result.segment_seconds.items()},
            "latency_ms": round(elapsed * 1e3, 4),
            "macs": result.macs,
        })
    write_npy(args.out, np.concatenate(outputs, axis=0))
    report = summarise(bundle, thresholds, args, tasks)
    if args.json:
        print_json(report)
    else:
        print_summary(report)
    return 0


def write_npy(path: str, array: np.ndarray) -> None:
    try:
        with atomic_write(path) as handle:
            np.save(handle, array)
    except OSError as exc:
        raise EdgesplitError("cannot write %s: %s" % (path, exc)) from None


def summarise(bundle, thresholds, args, tasks) -> dict:
    manifest = bundle.manifest
    counts = {str(e.id): 0 for e in manifest.exits}
    for task in tasks:
        counts[str(task["exit"])] += 1
    latencies = sorted(t["latency_ms"] for t in tasks)
    return {
        "bundle": str(bundle.root),
        "bundle_sha256": bundle.hash,
        "tasks": len(tasks),
        "exits_enabled": not args.no_exits,
        "thresholds": list(thresholds),
        "exit_counts": counts,
        "mean_macs": float(np.mean([t["macs"] for t in tasks])),
        "full_macs": manifest.cuts[-1].macs_before,
        "mean_latency_ms": float(np.mean(latencies)),
        "p95_latency_ms": float(latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))]),
        "out": args.out,
        "per_task": tasks,
    }


def print_summary(report: dict) -> None:
    print("%d tasks -> %s   mean MACs %.0f of %d   latency mean %.3f ms, p95 %.3f ms" % (
        report["tasks"], report["out"], report["mean_macs"], report["full_macs"],
        report["mean_latency_ms"], report["p95_latency_ms"]))
    rows = [(exit_id, count, "%.1f%%" % (100.0 * count / report["tasks"]))
            for exit_id, count in report["exit_counts"].items()]
    print_table(("exit", "tasks", "share"), rows)
