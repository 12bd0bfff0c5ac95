"""The numbers a run is judged by: completion, fallbacks, satisfaction rate, accuracy, latency, bytes."""
from typing import Any, Dict, Optional, Sequence

import numpy as np

from edgesplit.runtime.controller.reward import Bounds
from edgesplit.runtime.device.loop import TaskResult


def summarize(results: Sequence[TaskResult], bounds: Bounds, n_exits: int, energy_bounded: bool = True) -> Dict[str, Any]:
    n = len(results)
    if n == 0:
        return {"tasks": 0, "completed": 0}
    latency = np.array([r.latency_s for r in results])
    energy = np.array([r.energy for r in results])
    meets_latency = latency <= bounds.latency_s
    meets_energy = energy <= bounds.energy if energy_bounded else np.ones(n, dtype=bool)
    labelled = [r for r in results if r.label is not None]
    accuracy = (sum(1 for r in labelled if r.result == r.label) / float(len(labelled))) if labelled else None
    exits = [0] * n_exits
    for r in results:
        exits[r.exit_id] += 1
    return {
        "tasks": n,
        "completed": n,
        "fallbacks": sum(1 for r in results if r.fallback),
        "offloaded": sum(1 for r in results if r.cut is not None),
        "sr": float(np.mean(meets_latency & meets_energy)),
        "sr_latency": float(np.mean(meets_latency)),
        "sr_energy": float(np.mean(meets_energy)) if energy_bounded else None,
        "accuracy": accuracy,
        "labelled": len(labelled),
        "mean_latency_ms": 1e3 * float(latency.mean()),
        "p95_latency_ms": 1e3 * float(np.percentile(latency, 95)),
        "mean_energy": float(energy.mean()),
        "bytes_sent": int(sum(r.bytes_sent for r in results)),
        "exit_shares": [c / float(n) for c in exits],
    }
