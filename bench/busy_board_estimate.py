"""A board that is never idle: its link estimate against the rate its link replays, probes read by the caller
or by the probe thread (docs/link.md, "A board that is never idle").

A real ``edgesplit peer`` and, per run, a fresh ``edgesplit link`` process replaying the same window of a
recording (default: 30 s of the held-out ``norway_ferry_3``, scaled to the closed loop's 0.446 Mbit/s mean, 20 ms
RTT). The device side, in this process, is connected as the pipeline connects it (``connect_peers``) and runs
tasks back to back as a board whose queue never empties: the device loop's upkeep (``maybe_probe``), then
``--task-ms`` of compute during which nothing reads the socket. Two kinds of compute: ``sleep`` (what
onnxruntime's run is to the other threads: the GIL released) and ``python`` (a loop of Python holding the GIL
as much as the interpreter lets it: the worst case for the probe thread's wake-up). Every task stays on the
board, so only probes measure the link. Two modes, alternated run by run on the same window: ``caller`` (the
client before the probe thread: answers read at the next task's upkeep) and ``thread`` (the probe thread).

Prints JSON: per mode and compute kind, the estimate / replayed rate per second (the median estimate of the
second's tasks over the second's rate: median, quartiles, 5th and 95th percentiles over every run's seconds),
distinct estimates per run, probes sent per second, payload samples the estimator took.

    .venv/bin/python bench/busy_board_estimate.py --runs 2 --out bench/results/busy_board_estimate_DATE.json
"""
import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edgesplit.codegen.learning.closed_loop import write_recording
from edgesplit.runtime.default_bundle import default_bundle_path, resolve_bundle
from edgesplit.runtime.device.pipeline import connect_peers
from edgesplit.runtime.emulation.link.recording_readers import read_recording
from edgesplit.runtime.peer.process import PeerProcess

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "traces"
DEFAULT_RECORDING = SHARED / "norway_hsdpa_3g" / "norway_ferry_3"
MODES = ("caller", "thread")
COMPUTE = ("sleep", "python")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_link(recording: Path, peer: str, rtt_ms: float):
    """An ``edgesplit link`` process; returns (process, endpoint, monotonic time its replay started)."""
    listen = "tcp://127.0.0.1:%d" % free_port()
    command = [sys.executable, "-m", "edgesplit.runtime.cli", "link", "--listen", listen, "--to", peer,
               "--recording", str(recording), "--rtt-ms", str(rtt_ms), "--json"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    ready = json.loads(process.stdout.readline())
    started = time.monotonic()
    if ready.get("event") != "ready":
        process.kill()
        raise RuntimeError("edgesplit link did not start: %r" % ready)
    return process, ready["endpoint"], started


def compute(kind: str, seconds: float) -> None:
    if kind == "sleep":
        time.sleep(seconds)
        return
    until = time.perf_counter() + seconds
    x = 0
    while time.perf_counter() < until:
        for i in range(200):
            x += i * i


def one_run(mode: str, kind: str, recording: Path, rates: np.ndarray, peer: str, bundle_hash: str,
            window_s: float, task_s: float, rtt_ms: float) -> dict:
    link, endpoint, started = start_link(recording, peer, rtt_ms)
    rows = []
    try:
        with connect_peers([endpoint], bundle_hash, background_probes=(mode == "thread")) as client:
            origin = time.monotonic()
            while time.monotonic() - origin < window_s:
                client.maybe_probe()
                rows.append((time.monotonic() - started, client.link_estimate().bandwidth_bps))
                compute(kind, task_s)
            elapsed = time.monotonic() - origin
            probes = sum(c.probes_sent for c in client.clients)
            samples = client.link_estimate().samples
    finally:
        link.terminate()
        link.wait(10)
    per_second = {}
    for at, estimate in rows:
        index = int(at)
        if estimate and 0 <= index < len(rates):
            per_second.setdefault(index, []).append(estimate)
    ratios = [float(np.median(values)) / rates[index] for index, values in per_second.items()]
    return {"ratios": ratios, "distinct_estimates": len({e for _, e in rows if e}), "tasks": len(rows),
            "probes_per_s": probes / elapsed, "payload_samples": samples}


def quartiles(values):
    if not values:
        return None
    q = np.percentile(values, [5, 25, 50, 75, 95])
    return {"p5": round(q[0], 3), "q1": round(q[1], 3), "median": round(q[2], 3), "q3": round(q[3], 3),
            "p95": round(q[4], 3), "n": len(values)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recording", type=Path, default=DEFAULT_RECORDING)
    parser.add_argument("--window-s", type=float, default=30.0)
    parser.add_argument("--mean-mbps", type=float, default=0.446)
    parser.add_argument("--task-ms", type=float, default=40.0)
    parser.add_argument("--rtt-ms", type=float, default=20.0)
    parser.add_argument("--runs", type=int, default=2, help="runs per mode and compute kind (alternated)")
    parser.add_argument("--compute", nargs="+", choices=COMPUTE, default=list(COMPUTE))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        window = Path(tmp) / "window.txt"
        written = write_recording(args.recording, window, args.mean_mbps, seconds=args.window_s + 5)
        rates = np.asarray(read_recording(window).bps, dtype=float)
        runs = {(m, k): [] for m in MODES for k in args.compute}
        with PeerProcess(default_bundle_path()) as peer:
            bundle_hash = resolve_bundle("default").wire_hash
            for run in range(args.runs):
                for kind in args.compute:
                    for mode in (MODES if run % 2 == 0 else MODES[::-1]):
                        result = one_run(mode, kind, window, rates, peer.endpoint, bundle_hash, args.window_s,
                                         args.task_ms / 1e3, args.rtt_ms)
                        runs[(mode, kind)].append(result)
                        print(json.dumps({"run": run, "mode": mode, "compute": kind,
                                          "median_ratio": quartiles(result["ratios"])["median"] if result["ratios"] else None,
                                          "distinct": result["distinct_estimates"]}), file=sys.stderr, flush=True)
    report = {
        "bench": "busy_board_estimate", "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "machine": {"host": platform.node(), "python": platform.python_version(), "cpus": os.cpu_count(),
                    "load_average": os.getloadavg()},
        "settings": {"recording": written, "window_s": args.window_s, "task_ms": args.task_ms, "rtt_ms": args.rtt_ms,
                     "runs": args.runs},
        "results": [{"mode": mode, "compute": kind,
                     "estimate_over_rate_per_second": quartiles([r for res in results for r in res["ratios"]]),
                     "distinct_estimates_per_run": [res["distinct_estimates"] for res in results],
                     "tasks_per_run": [res["tasks"] for res in results],
                     "probes_per_s": [round(res["probes_per_s"], 2) for res in results],
                     "payload_samples_per_run": [res["payload_samples"] for res in results]}
                    for (mode, kind), results in runs.items()],
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
