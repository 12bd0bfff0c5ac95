"""Early exits on the embedded bundle: how accuracy, compute and latency move with the thresholds.

Runs the executor image by image (batch 1, as tasks arrive on a board) over the shipped held-out
images for: no exits at all, the bundle's default per-exit thresholds, and a common threshold for
every exit swept from 0 to 1. Prints one JSON document; per point: accuracy, mean MACs (and the
ratio to the no-exit pass), the share of tasks leaving at each exit, and mean wall time per image.

    python bench/exit_sweep.py [--bundle DIR] [--step 0.05] [--threads 1]

Latencies are from one run on this machine; compare them with each other, not across machines.
"""
import argparse
import json
import platform
import sys
import time

import numpy as np


from edgesplit.runtime.bundle.store import load_bundle
from edgesplit.runtime.default_bundle import default_bundle_path, load_heldout
from edgesplit.runtime.executor.executor import Executor


def measure(executor, images, labels, **kwargs):
    exit_ids = [e.id for e in executor.manifest.exits]
    correct, macs, taken = 0, 0, []
    start = time.perf_counter()
    for i in range(len(images)):
        result = executor.run(images[i:i + 1], **kwargs)
        correct += int(result.output.argmax()) == int(labels[i])
        macs += result.macs
        taken.append(result.exit_id)
    seconds = time.perf_counter() - start
    n = len(images)
    return {
        "accuracy": correct / n,
        "mean_macs": macs / n,
        "exit_share": {str(e): taken.count(e) / n for e in exit_ids},
        "mean_latency_us": 1e6 * seconds / n,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", default=None, help="bundle directory (default: the embedded mnist-branchy)")
    parser.add_argument("--step", type=float, default=0.05, help="step of the common threshold sweep")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads per segment")
    args = parser.parse_args(argv)

    bundle = load_bundle(args.bundle or default_bundle_path())
    images, labels = load_heldout()
    executor = Executor(bundle, threads=args.threads)
    side = len(executor.side_exits)
    measure(executor, images[:50], labels[:50])  # warm caches before timing anything

    reference = measure(executor, images, labels, use_exits=False)
    defaults = measure(executor, images, labels)
    defaults["thresholds"] = list(executor.default_thresholds)
    sweep = []
    for t in np.round(np.arange(0.0, 1.0 + 1e-9, args.step), 4):
        point = measure(executor, images, labels, thresholds=[float(t)] * side)
        point["threshold"] = float(t)
        sweep.append(point)
    for point in [defaults] + sweep:
        point["macs_ratio_vs_no_exits"] = point["mean_macs"] / reference["mean_macs"]
        point["latency_ratio_vs_no_exits"] = point["mean_latency_us"] / reference["mean_latency_us"]

    manifest = bundle.manifest
    report = {
        "bench": "exit_sweep",
        "bundle": manifest.name,
        "bundle_sha256": bundle.hash,
        "images": int(len(images)),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "threads": args.threads,
        "exits": [{"id": e.id, "cut": e.cut, "head": e.head, "manifest_accuracy": e.accuracy, "macs": e.macs,
                   "default_threshold": e.threshold if e.head else None} for e in manifest.exits],
        "no_exits": reference,
        "default_thresholds": defaults,
        "common_threshold_sweep": sweep,
    }
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
