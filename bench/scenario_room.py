"""Scenario room: how much an adaptive policy could gain over the static baselines, on TRAINING recordings only.

For each candidate scenario (every recording scaled to a mean rate ``--mean-mbps``, the demo's board, workload,
bounds and recording speed otherwise, or ``--workload-scale``), on a fixed sample of the training recordings of
``codegen/learning/trace_split`` (every ``--every``-th of the sorted training list; never a held-out one):

- the static baselines, chosen on ALL the training recordings as ``evaluate`` chooses them;
- gate probes: the deployable two-action policy of ``--algo search`` with MOEA's action below a gate and
  remote-only's action at or above it, the gate at each of ``--gates`` x the mean rate;
- the hindsight oracle on the first ``--oracle-recordings`` of the sample (the slowest row).

Per scenario it reports the best static SR among the rows within the 1.5-point accuracy allowance of the most
accurate static row, the best gate probe within that allowance, the oracle, and the two rooms
(``gate_room_points``, ``oracle_room_points``); docs/learning.md ("Held-out, a scenario where the link matters")
states the rule that picks a scenario from them. Prints one JSON document.

    python bench/scenario_room.py --mean-mbps 0.4459 1 2 4 --out R.json
"""
import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def scenario_for(recordings, mean_mbps: float, workload_scale: float, tasks: int):
    from edgesplit.codegen.learning.environment import Recording, Scenario
    from edgesplit.runtime.default_bundle import default_bundle_path
    from edgesplit.runtime.emulation.scenario import DEMO

    return Scenario(bundle_dir=default_bundle_path(), board=DEMO["board"],
                    recordings=[scaled(p, mean_mbps) for p in recordings], link_scale=1.0, rtt_s=DEMO["rtt_s"],
                    workload_scale=workload_scale, latency_bound_s=DEMO["latency_bound_s"],
                    energy_bound=DEMO["energy_bound_mj"], period_s=DEMO["period_s"], episode_tasks=tasks,
                    recording_speed=DEMO["recording_speed"])


def scaled(path: Path, mean_mbps: float):
    from edgesplit.codegen.learning.environment import Recording
    from edgesplit.runtime.emulation.link.recording_readers import read_recording

    read = read_recording(path)
    rates = np.asarray(read.bps, dtype=float)
    return Recording(str(path), read.step_s, rates * (mean_mbps * 1e6 / rates.mean()))


def measure(training, sample, mean_mbps: float, workload_scale: float, args) -> dict:
    from edgesplit.codegen.learning.baselines import Profiling, oracle_actions, run_oracle, static_baselines
    from edgesplit.codegen.learning.environment import Environment
    from edgesplit.codegen.learning.evaluate import verdict
    from edgesplit.codegen.learning.search import GatedPolicy

    env = Environment(scenario_for(sample, mean_mbps, workload_scale, args.tasks), seed=0)
    pooled = np.concatenate([scaled(p, mean_mbps).rates_bps for p in training])
    manifest = env.static.bundle.manifest
    profiling = Profiling(env.static.stats, env.static.cost, env.bounds, pooled,
                          tuple(e.threshold for e in manifest.exits if e.head is not None))
    static = static_baselines(profiling)
    moea_action = next(s.action for s in static if s.name == "moea")
    remote_action = next(s.action for s in static if s.name == "remote-only")
    strategies = list(static)
    gates = [("gate x%g" % factor, factor * mean_mbps) for factor in args.gates]
    estimates = None
    if args.gate_quantiles:
        # The estimate the board reads is not the link's rate (under a local action it comes from 4 KiB probes, and
        # the exchange's own overheads compress it at high rates): gates where the estimate actually falls.
        estimates = np.concatenate([env.run(s, seed=0, recording=i).per_task["estimate_bps"] / 1e6
                                    for s in static if s.name in ("moea", "remote-only") for i in range(len(sample))])
        estimates = estimates[np.isfinite(estimates)]
        gates = [("gate q%g" % q, float(np.quantile(estimates, q))) for q in args.gate_quantiles]
    for name, gate in gates:
        gated = GatedPolicy(tuple(moea_action.thresholds), moea_action.cut, tuple(remote_action.thresholds),
                            remote_action.cut, round(gate, 4), 1)
        strategies.append(gated.strategy(env.n_exits, env.n_cuts, env.max_interval, name=name))
    rows = {s.name: [] for s in strategies}
    rows["oracle"] = []
    candidates = oracle_actions(env.n_exits, env.n_cuts, extra=[s.action for s in static])
    for index in range(len(sample)):
        for seed in range(args.seeds):
            for s in strategies:
                e = env.run(s, seed=seed, recording=index)
                rows[s.name].append((index, e.sr, e.accuracy))
            if index < args.oracle_recordings:
                e = run_oracle(env, candidates, seed=seed, recording=index)
                rows["oracle"].append((index, e.sr, e.accuracy))

    def mean_of(name, only=None):
        picked = [r for r in rows[name] if only is None or r[0] < only]
        return float(np.mean([r[1] for r in picked])), float(np.mean([r[2] for r in picked]))

    table = [{"strategy": name, "sr": mean_of(name)[0], "accuracy": mean_of(name)[1]}
             for name in rows if name != "oracle"]
    static_rows = [r for r in table if r["strategy"] in {s.name for s in static}]
    floor = max(r["accuracy"] for r in static_rows) - 0.015
    eligible = [r for r in static_rows if r["accuracy"] >= floor - 1e-12]
    best_static = max(eligible, key=lambda r: r["sr"])
    probes = [r for r in table if r["strategy"].startswith("gate") and r["accuracy"] >= floor - 1e-12]
    best_probe = max(probes, key=lambda r: r["sr"]) if probes else None
    result = {"mean_mbps": mean_mbps, "workload_scale": workload_scale, "rows": table,
              "gates_mbps": {name: round(gate, 4) for name, gate in gates},
              "estimate_quantiles_mbps": None if estimates is None else {
                  str(q): round(float(np.quantile(estimates, q)), 4) for q in (0.1, 0.25, 0.5, 0.75, 0.9)},
              "accuracy_floor": floor, "best_static": best_static,
              "best_gate_probe": best_probe,
              "gate_room_points": round(100 * (best_probe["sr"] - best_static["sr"]), 2) if best_probe else None,
              "per_recording": {name: [{"recording": Path(str(sample[i])).name, "sr": sr, "accuracy": acc}
                                       for i, sr, acc in rows[name]] for name in rows},
              "moea_action": {"thresholds": list(moea_action.thresholds), "cut": moea_action.cut,
                              "use_exits": moea_action.use_exits}}
    if rows["oracle"]:
        n = args.oracle_recordings
        oracle_sr = mean_of("oracle")[0]
        static_on_same = max((r for r in static_rows if r["accuracy"] >= floor - 1e-12),
                             key=lambda r: mean_of(r["strategy"], n)[0])
        result["oracle"] = {"sr": oracle_sr, "accuracy": mean_of("oracle")[1], "recordings": n,
                            "best_static_on_same": static_on_same["strategy"],
                            "best_static_sr_on_same": mean_of(static_on_same["strategy"], n)[0]}
        result["oracle_room_points"] = round(100 * (oracle_sr - mean_of(static_on_same["strategy"], n)[0]), 2)
    return result


def main() -> int:
    from edgesplit.codegen.learning.trace_split import shared_traces_dir, split

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces-dir", default=str(shared_traces_dir(ROOT)), help="the shared traces folder")
    parser.add_argument("--mean-mbps", type=float, nargs="+", default=[0.4459, 1.0, 2.0, 4.0],
                        help="candidate mean rates (every recording scaled to each)")
    parser.add_argument("--workload-scale", type=float, nargs="+", default=[112.0], help="candidate workload scales")
    parser.add_argument("--every", type=int, default=11, help="sample every N-th training recording (sorted)")
    parser.add_argument("--gates", type=float, nargs="+", default=[0.5, 1.0, 1.5, 2.0],
                        help="gate probes at these multiples of the mean rate")
    parser.add_argument("--gate-quantiles", type=float, nargs="+",
                        help="instead of --gates: gate probes at these quantiles of the bandwidth estimate the board "
                             "read under MOEA's and remote-only's actions on the sample")
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--oracle-recordings", type=int, default=4, help="the oracle on the first N of the sample")
    parser.add_argument("--out", help="also write the JSON document here")
    args = parser.parse_args()
    training, _ = split(Path(args.traces_dir))
    sample = sorted(training)[::args.every]
    started = time.monotonic()
    report = {"bench": "scenario_room", "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec="seconds"), "machine": {"host": platform.node(), "cpus": os.cpu_count(),
                                         "load_1min": os.getloadavg()[0], "python": platform.python_version()},
              "command": " ".join([Path(sys.executable).name] + sys.argv), "tasks": args.tasks, "seeds": args.seeds,
              "sample": [str(p.relative_to(args.traces_dir)) for p in sample], "scenarios": []}
    for workload in args.workload_scale:
        for mean in args.mean_mbps:
            print("scenario_room: %g Mbit/s, workload x%g (%.0f s)" % (mean, workload, time.monotonic() - started),
                  file=sys.stderr, flush=True)
            report["scenarios"].append(measure(training, sample, mean, workload, args))
            s = report["scenarios"][-1]
            print("  best static %s %.4f; gate probe %s; gate room %s; oracle room %s" % (
                s["best_static"]["strategy"], s["best_static"]["sr"],
                s["best_gate_probe"] and (s["best_gate_probe"]["strategy"], round(s["best_gate_probe"]["sr"], 4)),
                s["gate_room_points"], s.get("oracle_room_points")), file=sys.stderr, flush=True)
    report["wall_s"] = round(time.monotonic() - started, 1)
    text = json.dumps(report, indent=1, default=str)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
