"""Training-side probe: a gated policy with a memory of how often its gate was open, on the validation recordings.

Not a product policy (it is a Python strategy, not a frozen file): a question for the next policy family, asked
on training recordings only (every fourth training recording of ``codegen/learning/trace_split``, what ``train
--algo search`` validates on; never a held-out one). The probe: remote-only's action (cut 0) while the peer is alive
and the bandwidth estimate is at least ``--gate``; otherwise a local action (cut 3) that depends on the share of the
last ``--window`` decisions whose gate was open: the *fast* one (one threshold ``--fast``) when that share is at
least ``--share``, else the *accurate* one (``--accurate``, MOEA's thresholds by default). Where the link has been
good the accuracy allowance is spent on the few local tasks; where it has been bad the local action holds the
accuracy. Each variant runs with its EdgeML-T1/-TL/-NonBranch ablations beside every baseline ``evaluate`` runs
(chosen on the other training recordings) and ``evaluate``'s verdict is taken per recording. Prints one JSON document.

    python bench/memory_gate_probe.py --window 50 200 --share 0.5 0.8 --fast 0.5 0.62 --out R.json
"""
import argparse
import collections
import itertools
import sys
import time
from pathlib import Path

from report import emit, header

ROOT = Path(__file__).resolve().parents[1]


class MemoryGate:
    """Remote above the gate; below it the fast local action if the gate was open often enough lately, else the
    accurate one. ``reset`` starts each episode's memory empty (the environment calls it)."""

    def __init__(self, gate_mbps, window, share, fast, accurate, n_exits, n_cuts):
        from edgesplit.runtime.controller.strategies import Action

        self.gate, self.window, self.share = gate_mbps, window, share
        self.remote = Action(tuple([0.0] * n_exits), 0, 1, True)
        self.fast = Action(tuple([fast] * n_exits), n_cuts - 1, 1, True)
        self.accurate = Action(tuple(accurate), n_cuts - 1, 1, True)
        self.name = "policy"
        self.policy_id = "memory-gate:%g:%d:%g:%g" % (gate_mbps, window, share, fast)
        self.reset()

    def reset(self):
        self.opened = collections.deque(maxlen=self.window)

    def decide(self, state):
        is_open = state["peer_alive"] >= 0.5 and state["bandwidth_mbps"] >= self.gate
        self.opened.append(is_open)
        if is_open:
            return self.remote
        share = sum(self.opened) / float(len(self.opened))
        return self.fast if share >= self.share else self.accurate

    def describe(self):
        return {"name": self.name, "policy_id": self.policy_id}


def main() -> int:
    from edgesplit.codegen.learning import environment as environment_module
    from edgesplit.codegen.learning.baselines import Profiling, ablations, static_baselines
    from edgesplit.codegen.learning.environment import Environment
    from edgesplit.codegen.learning.evaluate import aggregate, episode_row, load_policy_for, verdict
    from edgesplit.codegen.learning.evaluate_command import _read_rates, build_scenario, register
    from edgesplit.codegen.learning.trace_split import shared_traces_dir, split
    from edgesplit.runtime.shipped_policy import DEMO_POLICY_FILE

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces-dir", default=str(shared_traces_dir(ROOT)))
    parser.add_argument("--link-mean-mbps", type=float, default=1.0)
    parser.add_argument("--gate", type=float, nargs="+", default=[0.7])
    parser.add_argument("--window", type=int, nargs="+", default=[50, 200])
    parser.add_argument("--share", type=float, nargs="+", default=[0.5, 0.8])
    parser.add_argument("--fast", type=float, nargs="+", default=[0.5, 0.62])
    parser.add_argument("--accurate", type=float, nargs="+", default=[0.31, 0.62])
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--only", type=int, help="only the first N validation recordings")
    parser.add_argument("--out", help="also write the JSON document here")
    args = parser.parse_args()
    training, _ = split(Path(args.traces_dir))
    validation = [p for i, p in enumerate(training) if i % 4 == 3][:args.only]
    seeds = list(range(args.seeds))
    if args.only is not None and args.only < 1:
        parser.error("--only must be at least 1")
    variants = list(itertools.product(args.gate, args.window, args.share, args.fast))
    began = header("memory_gate_probe")  # when it started, not when it ended
    started = time.monotonic()

    evaluate_parser = argparse.ArgumentParser()
    register(evaluate_parser.add_subparsers())  # evaluate's own flags and defaults: the scenario evaluate builds
    reset = Environment._reset

    def reset_with_memory(self, seed, recording, start_s, strategy, store):
        inner = getattr(strategy, "inner", strategy)
        if hasattr(inner, "reset"):
            inner.reset()
        return reset(self, seed, recording, start_s, strategy, store)

    Environment._reset = reset_with_memory
    runs = []
    for index, recording in enumerate(validation):
        others = [p for p in training if p != recording]
        evaluate_args = evaluate_parser.parse_args(
            ["evaluate", "--link", str(recording), "--policy", str(DEMO_POLICY_FILE), "--link-mean-mbps", str(args.link_mean_mbps),
             "--tasks", str(args.tasks), "--seeds", str(args.seeds), "--no-oracle", "--no-progress"]
            + [x for p in others for x in ("--train-link", str(p))])
        scenario = build_scenario(evaluate_args)
        env = Environment(scenario, seed=0)
        manifest = env.static.bundle.manifest
        rates = __import__("numpy").concatenate([_read_rates(p, evaluate_args.link_format, scenario.link_scale,
                                                             args.link_mean_mbps)
                                                 for p in others])
        profiling = Profiling(env.static.stats, env.static.cost, env.bounds, rates,
                              tuple(e.threshold for e in manifest.exits if e.head is not None))
        planner = load_policy_for(str(DEMO_POLICY_FILE), env.features, env.n_exits, env.n_cuts, "planner")

        def rows_of(strategies):
            return [aggregate(s.name, [episode_row(env.run(s, seed=seed)) for seed in seeds], seeds)
                    for s in strategies]

        baseline_rows = rows_of(static_baselines(profiling) + [planner])
        for gate, window, share, fast in variants:
            policy = MemoryGate(gate, window, share, fast, args.accurate, env.n_exits, env.n_cuts)
            rows = baseline_rows + rows_of(ablations(policy) + [policy])
            runs.append({"link": str(recording.relative_to(args.traces_dir)),
                         "variant": {"gate": gate, "window": window, "share": share, "fast": fast},
                         "verdict": verdict(rows),
                         "results": [{k: r[k] for k in ("strategy", "sr", "accuracy", "sr_std")} for r in rows]})
        print("memory_gate_probe: %d/%d %s (%.0f s)" % (index + 1, len(validation), recording.name,
                                                       time.monotonic() - started), file=sys.stderr, flush=True)
    summary = []
    for gate, window, share, fast in variants:
        mine = [r for r in runs if r["variant"] == {"gate": gate, "window": window, "share": share, "fast": fast}]
        summary.append({"variant": mine[0]["variant"], "recordings": len(mine),
                        "highest_within_allowance": sum(bool(r["verdict"]["policy_sr_highest_within_allowance"])
                                                        for r in mine),
                        "strictly_highest": sum(bool(r["verdict"]["policy_sr_highest"]) for r in mine),
                        "within_allowance": sum(bool(r["verdict"]["policy_within_allowance"]) for r in mine),
                        "mean_sr": sum(next(x["sr"] for x in r["results"] if x["strategy"] == "policy")
                                       for r in mine) / len(mine)})
    report = dict(began, **{
              "environment_version": environment_module.ENVIRONMENT_VERSION,
              "validation": [str(p.relative_to(args.traces_dir)) for p in validation], "accurate": args.accurate,
              "summary": summary, "runs": runs, "wall_s": round(time.monotonic() - started, 1)})
    emit(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
