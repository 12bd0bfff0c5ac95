"""``edgesplit demo``: the embedded bundle on its held-out images, needing nothing but the package.

Runs every held-out image through the executor under several exit settings and prints what early
exits trade: accuracy against compute (MACs) and latency on this machine.
"""
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

from runtime.bundle.store import load_bundle
from runtime.commands.output import print_json, print_table
from runtime.executor.executor import Executor


def register(commands) -> None:
    parser = commands.add_parser(
        "demo", help="run the embedded model on its held-out images and show what early exits trade",
        description="Loads the embedded MNIST bundle, runs its held-out images locally with no early exits, "
                    "with the manifest's per-exit thresholds, and with one shared threshold, and prints "
                    "accuracy, mean compute and latency for each.")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N held-out images")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.set_defaults(handler=run_demo)


def evaluate(executor: Executor, images: np.ndarray, labels: np.ndarray,
             thresholds: Optional[Sequence[float]], use_exits: bool) -> Dict[str, object]:
    """Run each image as one task; return accuracy, compute and latency figures."""
    correct, macs, latencies = 0, [], []
    exits = [0] * len(executor.manifest.exits)
    for row in range(images.shape[0]):
        started = time.perf_counter()
        result = executor.run(images[row:row + 1], thresholds=thresholds, use_exits=use_exits)
        latencies.append(time.perf_counter() - started)
        correct += int(np.argmax(result.output[0]) == labels[row])
        macs.append(result.macs)
        exits[result.exit_id] += 1
    full = executor.manifest.cuts[-1].macs_before
    return {
        "accuracy": correct / float(len(labels)),
        "mean_macs": float(np.mean(macs)),
        "compute_share": float(np.mean(macs)) / full,
        "mean_latency_ms": 1e3 * float(np.mean(latencies)),
        "p95_latency_ms": 1e3 * float(np.percentile(latencies, 95)),
        "exit_shares": [count / float(len(labels)) for count in exits],
    }


def settings(executor: Executor) -> List[Dict[str, object]]:
    side = len(executor.side_exits)
    return [
        {"name": "no early exits", "thresholds": None, "use_exits": False},
        {"name": "manifest thresholds", "thresholds": list(executor.default_thresholds), "use_exits": True},
        {"name": "one threshold 0.1", "thresholds": [0.1] * side, "use_exits": True},
        {"name": "one threshold 0.3", "thresholds": [0.3] * side, "use_exits": True},
    ]


def run_demo(args) -> int:
    from runtime.default_bundle import default_bundle_path, load_heldout

    bundle = load_bundle(default_bundle_path())
    images, labels = load_heldout()
    if args.limit:
        images, labels = images[:args.limit], labels[:args.limit]
    executor = Executor(bundle)
    rows = []
    for setting in settings(executor):
        figures = evaluate(executor, images, labels, setting["thresholds"], setting["use_exits"])
        rows.append(dict(setting, **figures))
    report = {"bundle": str(bundle.root), "bundle_sha256": bundle.hash, "images": int(len(labels)),
              "exits": [{"id": e.id, "cut": e.cut, "accuracy": e.accuracy, "macs": e.macs}
                        for e in bundle.manifest.exits],
              "results": rows}
    if args.json:
        print_json(report)
        return 0
    print("embedded bundle %s (%s...), %d held-out images, local execution on this machine"
          % (bundle.manifest.name, bundle.hash[:12], len(labels)))
    print_table(("setting", "accuracy", "compute", "mean ms", "p95 ms", "exit shares"), [
        (r["name"], "%.1f%%" % (100 * r["accuracy"]), "%.0f%%" % (100 * r["compute_share"]),
         "%.3f" % r["mean_latency_ms"], "%.3f" % r["p95_latency_ms"],
         " / ".join("%.0f%%" % (100 * s) for s in r["exit_shares"])) for r in rows])
    return 0
