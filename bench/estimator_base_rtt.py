"""Success rate before and after the base-RTT refresh (docs/link.md, "Base RTT"), in the environment.

The virtual-time environment (codegen/learning/environment.py) feeds the runtime's own
``LinkEstimator`` exactly as the peer client does, so the two code versions are compared by running
the same episodes under each: this tree ("after") and ``--before-tree`` (a checkout of the commit
before, e.g. ``git worktree add /tmp/before <commit>``), imported in a subprocess ahead of the
installed package. Scenarios: the demo's, and the demo's settings on other recordings (same link
scale and RTT). Strategies: the shipped planner policy and remote-only. Prints JSON: per scenario and
strategy, SR, fallbacks and the median estimate / true-rate ratio for each version, over --seeds seeds;
and for this tree, the planner policy's SR and probes per 100 tasks for each --refresh-s period.

    .venv/bin/python bench/estimator_base_rtt.py --before-tree /tmp/before --seeds 5
"""
import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RECORDINGS = {
    "demo (norway_car_3)": None,
    "norway_ferry_3": "/work/shared/traces/norway_hsdpa_3g/norway_ferry_3",
    "ghent report_bicycle_0001": "/work/shared/traces/ghent_4g/cooked/report_bicycle_0001",
    "multipath 13_2_cellular": "/work/shared/traces/multipath_wifi_cellular/13_2_cellular.csv",
}
FOLDERS = ("runtime", "codegen", "policies_lite", "board_configs")


def one_version(seeds: int) -> dict:
    """Every scenario x strategy x seed with whatever ``edgesplit`` imports here."""
    from edgesplit.codegen.learning.environment import Environment, demo_scenario
    from edgesplit.runtime.controller.strategies import load_policy_strategy, remote_only
    from edgesplit.runtime.default_bundle import DEMO_POLICY_FILE
    from edgesplit.runtime.transport import link_estimate

    out = {"estimator_file": link_estimate.__file__, "scenarios": {}}
    base = demo_scenario()
    for name, path in RECORDINGS.items():
        scenario = base if path is None else dataclasses.replace(base, recordings=[Path(path)])
        env = Environment(scenario)
        strategies = {"planner policy": load_policy_strategy(str(DEMO_POLICY_FILE), env.n_exits, env.n_cuts),
                      "remote-only": remote_only(env.n_exits)}
        rows = {}
        for label, strategy in strategies.items():
            srs, fallbacks, ratios = [], [], []
            for seed in range(seeds):
                episode = env.run(strategy, seed=seed)
                srs.append(episode.sr)
                fallbacks.append(episode.fallbacks)
                est, true = episode.per_task["estimate_bps"], episode.per_task["bandwidth_bps"]
                ok = (est > 0) & (true > 0)
                ratios.append(float(np.median(est[ok] / true[ok])) if ok.any() else float("nan"))
            rows[label] = {"sr": srs, "sr_mean": float(np.mean(srs)), "fallbacks_mean": float(np.mean(fallbacks)),
                           "estimate_over_true_median": float(np.nanmedian(ratios))}
        out["scenarios"][name] = rows
    return out


def refresh_sweep(seeds: int, periods) -> dict:
    """This tree with the estimator's ``rtt_refresh_s`` set to each of ``periods``: the planner policy's SR
    and how many probes the client sent per 100 tasks."""
    import functools

    from edgesplit.codegen.learning import virtual_client
    from edgesplit.codegen.learning.environment import Environment, demo_scenario
    from edgesplit.runtime.controller.strategies import load_policy_strategy
    from edgesplit.runtime.default_bundle import DEMO_POLICY_FILE

    plain = virtual_client.LinkEstimator
    out = {}
    base = demo_scenario()
    try:
        for name, path in RECORDINGS.items():
            env = Environment(base if path is None else dataclasses.replace(base, recordings=[Path(path)]))
            policy = load_policy_strategy(str(DEMO_POLICY_FILE), env.n_exits, env.n_cuts)
            rows = {}
            for period in periods:
                virtual_client.LinkEstimator = functools.partial(plain, rtt_refresh_s=period)
                srs, probes = [], []
                for seed in range(seeds):
                    episode = env.run(policy, seed=seed)
                    srs.append(episode.sr)
                    probes.append(100.0 * env.peer.probes / episode.tasks)
                rows[str(period)] = {"sr_mean": float(np.mean(srs)), "probes_per_100_tasks": float(np.mean(probes))}
            out[name] = rows
    finally:
        virtual_client.LinkEstimator = plain
    return out


def run_before(tree: Path, seeds: int) -> dict:
    """This script's one-version mode in a subprocess that imports ``edgesplit`` from ``tree`` first."""
    with tempfile.TemporaryDirectory() as tmp:
        package = Path(tmp) / "edgesplit"
        package.mkdir()
        for folder in FOLDERS:
            os.symlink(str(tree.resolve() / folder), str(package / folder))
        env = dict(os.environ, PYTHONPATH=tmp)
        done = subprocess.run([sys.executable, __file__, "--one-version", "--seeds", str(seeds)], env=env,
                              check=True, stdout=subprocess.PIPE)
    return json.loads(done.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before-tree", type=Path, help="a source tree of the version before")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--refresh-s", type=float, nargs="*", default=[0.5, 1.0, 2.0, 5.0, 20.0],
                        help="rtt_refresh_s periods to sweep on this tree")
    parser.add_argument("--one-version", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_version:
        print(json.dumps(one_version(args.seeds)))
        return 0
    started = time.time()
    result = {"bench": "estimator_base_rtt", "seeds": args.seeds, "python": platform.python_version(),
              "machine": platform.machine(), "cpus": os.cpu_count(),
              "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime(started)),
              "after": one_version(args.seeds)}
    if args.refresh_s:
        result["refresh_sweep"] = refresh_sweep(args.seeds, args.refresh_s)
    if args.before_tree is not None:
        result["before"] = run_before(args.before_tree, args.seeds)
        if result["before"]["estimator_file"] == result["after"]["estimator_file"]:
            raise SystemExit("--before-tree was not imported ahead of the installed package")
    result["seconds"] = round(time.time() - started, 1)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
