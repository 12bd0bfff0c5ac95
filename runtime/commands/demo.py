"""``edgesplit demo``: adaptive split inference against static baselines, with nothing but the package.

Starts a real peer (a subprocess on loopback), puts a software link that replays a real bandwidth
recording (shipped in the package) between each device and the peer, paces the device to an EMULATED
board, and runs the embedded held-out images under five strategies at once (each with its own link
replaying the same recording from the same instant, so every strategy sees the same bandwidth at the
same task): local-only, remote-only, Neurosurgeon's best static cut, one fixed threshold for all
exits, and the adaptive frozen policy. Prints one table, the trace database and how the adaptive
decisions followed the bandwidth. The scenario is ``edgesplit.runtime.emulation.scenario.DEMO``.
"""
import logging
import os
import tempfile
import time
from typing import Any, Dict, List

import numpy as np

from edgesplit.runtime.bundle.store import load_bundle
from edgesplit.runtime.commands.output import Progress, print_json, print_table
from edgesplit.runtime.controller.reward import Bounds
from edgesplit.runtime.controller.strategies import (EnergyInput, fixed, load_policy_strategy, local_only,
                                                     remote_only)
from edgesplit.runtime.default_bundle import default_bundle_path, load_heldout
from edgesplit.runtime.shipped_policy import DEMO_POLICY_FILE, resolve_policy_path
from edgesplit.runtime.device.pipeline import LinkSetup
from edgesplit.runtime.emulation.board import ENERGY_UNIT, load_emulated_board
from edgesplit.runtime.emulation.pacing import Emulation
from edgesplit.runtime.emulation.scenario import DEMO
from edgesplit.runtime.emulation.side_by_side import run_strategies
from edgesplit.runtime.emulation.link.recording_readers import read_recording
from edgesplit.runtime.emulation.link.shipped import resolve_recording

log = logging.getLogger(__name__)

SERIES_BLOCK_S = 5.0  # recorded seconds per row of the adaptive decisions series
# The series table's columns, as docs/commands.md shows them (tests/docs checks the page against these).
SERIES_HEADERS = ("recorded s", "link Mbit/s", "", "estimate", "offloaded", "", "cuts chosen")


def register(commands) -> None:
    parser = commands.add_parser(
        "demo",
        description="Needs nothing but the installed package. Starts a peer on loopback, replays the shipped "
                    "Norway 3G bandwidth recording through a software link, paces the device to an EMULATED Jetson Nano (CPU) "
                    "running a VGG16-CIFAR-10-sized workload, and runs the embedded held-out MNIST images under "
                    "local-only, remote-only, Neurosurgeon (best static cut), one threshold for all exits, and "
                    "the adaptive frozen policy. Prints satisfaction rate (both bounds), accuracy, latency, "
                    "fallbacks and bytes per strategy, the trace database, and the adaptive decisions over time.")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N held-out images")
    parser.add_argument("--traces", help="trace database to write (default: a new file in the temp directory)")
    parser.add_argument("--policy", default=str(DEMO_POLICY_FILE), help="adaptive policy (default: the shipped one)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--no-progress", action="store_true",
                        help="print no progress lines (they go to stderr, so --json output stays clean)")
    parser.set_defaults(handler=run_demo)


def strategies(bundle, policy_path: str):
    manifest = bundle.manifest
    n_side = len([e for e in manifest.exits if e.head is not None])
    adaptive = load_policy_strategy(policy_path, n_side, len(manifest.cuts),
                                    energy=EnergyInput("emulated", ENERGY_UNIT, "the demo's emulated board"),
                                    bundle=bundle, board_name=DEMO["board"])
    chosen = adaptive.policy.provenance.get("static_baselines")
    if not chosen:
        # A policy from train records no static baselines: the demo's are the ones chosen with its shipped policy
        # (build-policy), so the baseline rows stay the same whatever --policy runs beside them.
        from edgesplit.policies_lite import read_policy_file

        chosen = read_policy_file(DEMO_POLICY_FILE)[0].provenance.get("static_baselines", {})
    neuro = chosen.get("neurosurgeon", {"cut": 0})
    single = chosen.get("single_threshold", {"cut": len(manifest.main), "threshold": 0.1})
    return [
        local_only(n_side, len(manifest.main), [e.threshold for e in manifest.exits if e.head is not None]),
        remote_only(n_side),
        fixed("neurosurgeon (cut %d)" % neuro["cut"], neuro["cut"], [0.0] * n_side, use_exits=False),
        fixed("one threshold %.2f (cut %d)" % (single["threshold"], single["cut"]), single["cut"],
              [single["threshold"]] * n_side),
        adaptive,
    ]


def _series(results, recording, link_scale: float, recording_speed: float, origin: float,
            block_s: float = SERIES_BLOCK_S) -> List[Dict[str, Any]]:
    """Per block of recorded seconds: the link's rate, the adaptive offload share and cuts chosen."""
    blocks = {}  # type: Dict[int, Dict[str, Any]]
    for r in results:
        # The relays start replaying the recording at ``origin``, when the first task arrives.
        recorded_t = (r.arrival_s - origin) * recording_speed
        key = int(recorded_t // block_s)
        entry = blocks.setdefault(key, {"recording_s": key * block_s, "tasks": 0, "offloaded": 0, "cuts": {},
                                        "est": []})
        entry["tasks"] += 1
        entry["offloaded"] += int(r.cut is not None)
        entry["cuts"][r.planned_cut] = entry["cuts"].get(r.planned_cut, 0) + 1
        if r.bandwidth_bps:
            entry["est"].append(r.bandwidth_bps)
    out = []
    for key in sorted(blocks):
        e = blocks[key]
        t0 = int(e["recording_s"])
        rate = float(np.mean(recording.bps[t0:t0 + int(block_s)])) * link_scale if t0 < len(recording.bps) else None
        out.append({"recording_s": e["recording_s"], "link_mbps": None if rate is None else round(rate / 1e6, 3),
                    "estimated_mbps": round(float(np.mean(e["est"])) / 1e6, 3) if e["est"] else None,
                    "tasks": e["tasks"], "offloaded": e["offloaded"],
                    "planned_cuts": {str(k): v for k, v in sorted(e["cuts"].items())}})
    return out


def _bar(value: float, full: float, width: int = 12, char: str = "#") -> str:
    """``value`` out of ``full`` as a bar of ``width`` characters."""
    n = int(round(min(max(value / full, 0.0), 1.0) * width)) if full > 0 else 0
    return char * n + "." * (width - n)


def run_demo(args) -> int:
    started = time.monotonic()
    progress = Progress(not args.no_progress)
    if not getattr(args, "verbose", 0):
        # Peer up/down events are the point of the table's fallback column; one line each would bury it.
        logging.getLogger("edgesplit.runtime.transport").setLevel(logging.ERROR)
    bundle_path = default_bundle_path()
    bundle = load_bundle(bundle_path)
    images, labels = load_heldout()
    if args.limit:
        images, labels = images[:args.limit], labels[:args.limit]
    traces = args.traces or os.path.join(tempfile.mkdtemp(prefix="edgesplit-demo-"), "demo_traces.db")
    recording = read_recording(resolve_recording(DEMO["recording"]))
    link = LinkSetup(recording, rtt_s=DEMO["rtt_s"], recording_speed=DEMO["recording_speed"],
                     link_scale=DEMO["link_scale"], name=DEMO["recording"])
    bounds = Bounds(DEMO["latency_bound_s"], DEMO["energy_bound_mj"])
    emulation = Emulation(load_emulated_board(DEMO["board"]), workload_scale=DEMO["workload_scale"],
                          speedup=DEMO["speedup"])
    chosen = strategies(bundle, args.policy)
    from edgesplit.runtime.traces import TraceStore

    store = TraceStore(traces, batch_size=64, flush_interval_s=1.0)
    try:
        rows, outputs, origin = run_strategies(bundle_path, bundle, chosen, images, labels, link, bounds, emulation,
                                               DEMO["period_s"], store, progress,
                                               run_config={"command": "demo", "scenario": DEMO})
    finally:
        store.close()
    progress.say("summarising; traces in %s" % traces)
    series = _series(outputs[-1], recording, DEMO["link_scale"], DEMO["recording_speed"], origin)
    best_accuracy = max(r["accuracy"] for r in rows[:-1])
    verdict = {"adaptive_sr_at_least_every_baseline": all(rows[-1]["sr"] >= r["sr"] for r in rows[:-1]),
               "adaptive_accuracy_gap_points": round(100 * (best_accuracy - rows[-1]["accuracy"]), 2)}
    adaptive = chosen[-1]
    shipped = resolve_policy_path(args.policy).resolve() == DEMO_POLICY_FILE.resolve()
    policy = {"path": str(resolve_policy_path(args.policy)), "policy_id": adaptive.policy_id,
              "algorithm": adaptive.policy.provenance.get("algorithm"), "shipped": shipped}
    report = {"scenario": dict(DEMO, emulated=True, board_description=emulation.profile.description,
                               note="EMULATED board and link: compute paced to the board profile x workload_scale, "
                                    "link = the bandwidth recording's rates x link_scale, run %gx faster than real time; "
                                    "latencies and energies are in emulated time" % DEMO["speedup"]),
              "images": int(len(labels)), "policy": policy, "results": rows, "acceptance": verdict, "traces": traces,
              "adaptive_series": series, "wall_s": round(time.monotonic() - started, 1)}
    if args.json:
        print_json(report)
        return 0
    print("EMULATED %s running a VGG16-CIFAR-10-sized workload (x%g MACs), bandwidth recording %s x%.3f, RTT %d ms, "
          "bounds %d ms and %d mJ per task, %d held-out images, one task every %d ms"
          % (emulation.profile.description, DEMO["workload_scale"], DEMO["recording"], DEMO["link_scale"],
             1e3 * DEMO["rtt_s"], 1e3 * DEMO["latency_bound_s"], DEMO["energy_bound_mj"], len(labels),
             1e3 * DEMO["period_s"]))
    print_table(("strategy", "SR", "SR lat", "SR energy", "accuracy", "mean ms", "p95 ms", "mJ", "fallbacks",
                 "offloaded", "bytes"), [
        (r["strategy"], "%.1f%%" % (100 * r["sr"]), "%.1f%%" % (100 * r["sr_latency"]),
         "%.1f%%" % (100 * r["sr_energy"]), "%.1f%%" % (100 * r["accuracy"]), "%.1f" % r["mean_latency_ms"],
         "%.1f" % r["p95_latency_ms"], "%.0f" % r["mean_energy"], r["fallbacks"], r["offloaded"], r["bytes_sent"])
        for r in rows])
    print("adaptive vs baselines: SR >= every baseline: %s; accuracy %.2f points below the most accurate baseline"
          % (verdict["adaptive_sr_at_least_every_baseline"], verdict["adaptive_accuracy_gap_points"]))
    if shipped:
        # The rule: the demo ships a trained policy only when it wins on recordings it never saw; say which.
        print("adaptive = the shipped planner policy (%s; edgesplit policy show demo): no trained policy (train --algo "
              "ddpg or search) has yet beaten every baseline on recordings it was not trained on, so the demo does not "
              "ship one (docs/learning.md)" % adaptive.policy_id[:12])
    else:
        print("adaptive = %s (%s, algorithm: %s)" % (policy["path"], adaptive.policy_id[:12], policy["algorithm"]))
    print("adaptive decisions as the bandwidth changes (per %g recorded seconds; link = the replayed rate, estimate = "
          "what the device measured; cut 0 = send the input, cut %d = all on the device):"
          % (SERIES_BLOCK_S, len(bundle.manifest.main)))
    top = max([e["link_mbps"] or 0.0 for e in series] + [1e-9])
    print_table(SERIES_HEADERS, [
        ("%g-%g" % (e["recording_s"], e["recording_s"] + SERIES_BLOCK_S), "%.2f" % (e["link_mbps"] or 0),
         _bar(e["link_mbps"] or 0.0, top), "-" if e["estimated_mbps"] is None else "%.2f" % e["estimated_mbps"],
         "%d/%d" % (e["offloaded"], e["tasks"]), _bar(e["offloaded"], e["tasks"], char="o"),
         " ".join("c%s:%d" % kv for kv in e["planned_cuts"].items()))
        for e in series])
    print("traces: %s   (%.1f s)" % (traces, report["wall_s"]))
    return 0
