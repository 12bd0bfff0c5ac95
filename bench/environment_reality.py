"""The environment against real processes: SR, accuracy, mean latency, offload and fallback shares per case.

For every recording (the two shipped ones and, where the traces directory exists, real traces from it,
each scaled to the demo's mean rate) and strategy (the demo's frozen policy; remote-only, which lives on
the link), run ``edgesplit peer`` + ``edgesplit run --board jetson_nano_cpu --link REC`` (real processes,
the software link, the emulated board at --speedup) --runs times, and the same scenario through
``Environment.run`` (same images in the same order) with --seeds seeds of its timing noise, three times:
with the environment's default timing figures, with its timing calibrated (``reality.calibrate``) on the
first recording's real runs only, and (for comparison) with each recording's own runs' timing. Prints
JSON: per case the mean figures of both, the gaps (environment - real), whether each is within
``reality.TOLERANCES``, and a summary per timing. ``--reuse DIR`` compares with an earlier run's real
trace databases instead of running new ones.

    .venv/bin/python bench/environment_reality.py --tasks 500 --runs 2 --traces-dir ../shared/traces
"""
import argparse
import json
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from edgesplit.codegen.learning import reality
from edgesplit.codegen.learning.environment import Environment, demo_scenario
from edgesplit.runtime.default_bundle import DEMO_POLICY_FILE
from edgesplit.runtime.emulation.scenario import DEMO

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "traces"
SHARED_TRACES = ("norway_hsdpa_3g/norway_tram_10", "fcc_broadband/trace_207336_http---www.amazon.com",
                 "ghent_4g/cooked/report_car_0001", "multipath_wifi_cellular/13_2_cellular.csv")
STRATEGIES = {"policy": {"policy": str(DEMO_POLICY_FILE)}, "remote-only": {"cut": 0, "no_exits": True}}


def recordings(shared: Path):
    """(name, path or shipped name) of every recording the bench replays."""
    out = [("norway_car_3", "norway_car_3"), ("ghent_bus_0001", "ghent_bus_0001")]
    if shared.is_dir():
        out += [(name, str(shared / name)) for name in SHARED_TRACES if (shared / name).exists()]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--runs", type=int, default=2, help="real runs per case")
    parser.add_argument("--seeds", type=int, default=5, help="environment seeds per case (its timing noise)")
    parser.add_argument("--speedup", type=float, default=DEMO["speedup"])
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--traces-dir", type=Path, default=SHARED,
                        help="the shared bandwidth traces (default: ../shared/traces beside the repository); "
                             "a missing directory means only the shipped recordings")
    parser.add_argument("--only", help="comma-separated recording names")
    parser.add_argument("--reuse", type=Path, help="a previous run's directory (its trace databases, in case order): "
                                                  "compare the environment with those real runs instead of new ones")
    args = parser.parse_args()
    started = time.time()
    workdir = args.reuse or reality.temporary_workdir()
    base = reality.reality_scenario(demo_scenario(), workdir, args.tasks)
    target_mean_bps = DEMO["link_scale"] / reality.scale_to_mean("norway_car_3", 1.0)  # the demo's rate range
    strategies = args.strategies.split(",")
    # Real runs first, every case (the first recording, the demo's, also calibrates the environment's timing).
    cases = []
    for name, recording in recordings(args.traces_dir):
        if args.only and name not in args.only.split(","):
            continue
        scale = DEMO["link_scale"] if name == "norway_car_3" else reality.scale_to_mean(recording, target_mean_bps)
        scenario = replace(base, link_scale=scale, recordings=[Path(recording)])
        for strategy in strategies:
            if args.reuse:
                reals = [reality.summary_from_traces(workdir / ("real_%d.db" % (len(cases) * args.runs + run)), scenario)
                         for run in range(args.runs)]
            else:
                reals = [reality.real_run(scenario, recording, STRATEGIES[strategy], args.tasks, args.speedup, workdir)
                         for _ in range(args.runs)]
            cases.append((name, recording, scale, scenario, strategy, reals))
            print("real %s %s: SR %s" % (name, strategy, [r["sr"] for r in reals]), file=sys.stderr, flush=True)
    calibration_cases = [c for c in cases if c[0] == cases[0][0]]
    calibration = reality.calibrate([Path(r["traces"]) for c in calibration_cases for r in c[5]],
                                    calibration_cases[0][3], calibration_cases[0][1])
    rows = []
    for name, recording, scale, scenario, strategy, reals in cases:
        # In sample: timing measured on this recording's own real runs (both strategies), for comparison.
        own = reality.calibrate([Path(r["traces"]) for c in cases if c[0] == name for r in c[5]], scenario, recording)
        for timing, timed in (("default", scenario), ("calibrated", reality.calibrated(scenario, calibration)),
                              ("in-sample", reality.calibrated(scenario, own))):
            env = Environment(timed)
            virtual = [reality.virtual_run(timed, recording, STRATEGIES[strategy], args.tasks, seed=seed,
                                           environment=env) for seed in range(args.seeds)]
            row = reality.compare(reals, virtual)
            row.update({"recording": name, "link_scale": round(scale, 5), "strategy": strategy, "timing": timing,
                        "calibration_case": name == cases[0][0]})
            rows.append(row)
            print(json.dumps({k: row[k] for k in ("recording", "strategy", "timing", "real", "environment", "gap",
                                                  "within")}), file=sys.stderr, flush=True)
    report = {"bench": "environment_reality", "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "machine": "%s, %s, python %s" % (platform.node(), platform.processor() or platform.machine(),
                                               platform.python_version()),
              "command": " ".join(["bench/environment_reality.py"] + sys.argv[1:]),
              "tasks": args.tasks, "speedup": args.speedup, "runs": args.runs, "seeds": args.seeds,
              "tolerances": reality.TOLERANCES,
              "calibration": {k: v for k, v in calibration.items() if not k.endswith("excess_s")},
              "cases": rows,
              "summary": {timing: dict(reality.summarise([r for r in rows if r["timing"] == timing]),
                                       mean_abs_gap={k: float(np.mean([abs(r["gap"][k]) for r in rows
                                                                       if r["timing"] == timing]))
                                                     for k in reality.TOLERANCES})
                          for timing in ("default", "calibrated", "in-sample")},
              "wall_s": round(time.time() - started, 1)}
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
