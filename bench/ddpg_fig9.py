"""EdgeML's Fig. 9 setting in the learning environment: DDPG against Neurosurgeon, several seeds, a held-out link.

    python bench/ddpg_fig9.py [--seeds 0 1 2 3 4] [--epochs 1000] [--workload-scale 2000] [--link-scale 0.047]
                              [--energy-bound MJ | --energy-fraction 0.923] [--ablation] [--out-dir DIR]

The default bundle on the EMULATED Jetson TX2 (``board_configs/jetson_tx2.toml``: no DVFS is
modelled, so the energy bound is on the emulated energy, busy 15 W / idle 3 W x time, in mJ, not
EdgeML's 1.2 GHz GPU-clock proxy; by default the bound is the same fraction, 1.2 / 1.3, of the
emulated energy of the whole model run locally), a 0.1 s latency bound, one image every 0.1 s, bandwidth
alternating 15 / 6 Mbit/s (a square wave written as a cooked recording, x ``--link-scale``). DDPG is
trained with ``edgesplit train``'s code path on ``square_train`` (20 s halves, high first) and
evaluated, frozen and loaded as ``run`` loads it, on ``square_heldout`` (15 s halves, low first),
which it never saw. Neurosurgeon is the runtime's ``planner.best_static_cut`` at the recordings'
mean rate (no early exits); local-only and remote-only are the runtime's static strategies. Each
strategy runs ``--eval-runs`` episodes (500 tasks) per trained seed. Prints one JSON document.

``--lineup`` also runs every strategy of ``edgesplit evaluate`` (MOEA, the single threshold, the planner
policy, EdgeML-T1/-TL/-NonBranch of each trained policy; baselines chosen on the training wave) on the
held-out wave, the same evaluation seeds, so "the highest of all strategies" is checked against all of them.

``--ablation`` also trains with the environment's extra state features (bandwidth now, window
minimum) on the same seeds and evaluates both variants the same way (greedy actor through
``Environment.step`` on the held-out wave), since a frozen policy with extras cannot load on the board.
"""
import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from edgesplit.codegen.learning.ddpg import Args, train
from edgesplit.codegen.learning.environment import EXTRA_FEATURES, Environment, Scenario
from edgesplit.runtime.controller.planner import best_static_cut
from edgesplit.runtime.controller.state import EDGEML_FEATURES as FEATURES  # what DDPG reads
from edgesplit.runtime.controller.strategies import fixed, load_policy_strategy, local_only, remote_only
from edgesplit.runtime.default_bundle import DEMO_POLICY_FILE, default_bundle_path, resolve_bundle


def write_square(path: Path, half_s: int, total_s: int, low_first: bool, high=15.0, low=6.0) -> Path:
    first, second = (low, high) if low_first else (high, low)
    path.write_text("".join("%d %.1f\n" % (t, first if (t // half_s) % 2 == 0 else second) for t in range(total_s)))
    return path


def summarise(values):
    values = np.asarray(values, dtype=float)
    return {"mean": round(float(values.mean()), 4), "std": round(float(values.std()), 4),
            "min": round(float(values.min()), 4), "max": round(float(values.max()), 4)}


def greedy_episode(env: Environment, agent, features, seed: int):
    """The trained actor, without noise, through reset/step on recording 0 from its start."""
    state = env.reset(seed=seed, recording=0, start_s=0.0)
    while True:
        x = np.array([state[f] for f in features])
        step = env.step(agent.codec.decode(agent.act(x, explore=False)))
        state = step.state
        if step.done:
            return step.info


def _mean(value):
    return value["mean"] if isinstance(value, dict) else value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--board", default="jetson_tx2")
    parser.add_argument("--workload-scale", type=float, default=2000.0)
    parser.add_argument("--link-scale", type=float, default=0.047)
    parser.add_argument("--energy-bound", type=float,
                        help="mJ per task; default: --energy-fraction x the whole model's energy run locally")
    parser.add_argument("--energy-fraction", type=float, default=1.2 / 1.3,
                        help="EdgeML bounds the TX2's GPU clock at 1.2 of its 1.3 GHz; the same fraction of the "
                             "emulated energy of the whole model run locally (default 1.2/1.3)")
    parser.add_argument("--eval-runs", type=int, default=3)
    parser.add_argument("--ablation", action="store_true")
    parser.add_argument("--lineup", action="store_true", help="also run every strategy of 'edgesplit evaluate'")
    parser.add_argument("--set", nargs="*", default=[], metavar="ARG=VALUE",
                        help="override DDPG Args fields (e.g. gamma=0.5), recorded in the output")
    parser.add_argument("--out-dir", default=None, help="where the recordings and policies go (default: a temp dir)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = type(getattr(Args(), key))(value)
    out = Path(args.out_dir or tempfile.mkdtemp(prefix="fig9_"))
    out.mkdir(parents=True, exist_ok=True)
    train_wave = write_square(out / "square_train.txt", 20, 200, low_first=False)
    heldout_wave = write_square(out / "square_heldout.txt", 15, 200, low_first=True)
    common = dict(bundle_dir=default_bundle_path(), board=args.board, link_scale=args.link_scale,
                  workload_scale=args.workload_scale, latency_bound_s=0.1, period_s=0.1, episode_tasks=500)
    if args.energy_bound is None:
        probe = Environment(Scenario(recordings=[train_wave], **common), seed=0)
        local_mj = probe.static.board.energy_mj(sum(probe.static.cost.main_s), 0.0)
        args.energy_bound = round(args.energy_fraction * local_mj, 1)
    common["energy_bound"] = args.energy_bound
    env = Environment(Scenario(recordings=[train_wave], **common), seed=0)
    test = Environment(Scenario(recordings=[heldout_wave], **common), seed=0)
    cost = env.static.cost
    mean_bps = 10.5e6 * args.link_scale
    neuro_cut = best_static_cut(cost, mean_bps, env.static.stats, env.bounds)["cut"]
    baselines = [fixed("neurosurgeon", neuro_cut, [0.0] * env.n_exits, use_exits=False),
                 local_only(env.n_exits, env.n_cuts - 1, [e.threshold for e in resolve_bundle("default").manifest.exits
                                                          if e.head is not None]),
                 remote_only(env.n_exits)]
    results = {}
    eval_seeds = range(100, 100 + args.eval_runs)
    for strategy in baselines:
        eps = [test.run(strategy, seed=k, start_s=0.0) for k in eval_seeds]
        results[strategy.name] = {"sr": summarise([e.sr for e in eps]),
                                  "accuracy": summarise([e.accuracy for e in eps]),
                                  "mean_latency_ms": summarise([e.mean_latency_ms for e in eps])}
    if args.lineup:
        from edgesplit.codegen.learning.baselines import Profiling, ablations, static_baselines
        from edgesplit.codegen.learning.evaluate import load_policy_for

        profiling = Profiling(env.static.stats, cost, env.bounds,
                              np.concatenate([np.asarray(rec[1], dtype=float) for rec in env.static.recordings]),
                              tuple(e.threshold for e in resolve_bundle("default").manifest.exits if e.head is not None))
        lineup_baselines = static_baselines(profiling) + [
            load_policy_for(DEMO_POLICY_FILE, FEATURES, env.n_exits, env.n_cuts, "planner")]
        for strategy in lineup_baselines:
            if strategy.name in results:
                continue
            eps = [test.run(strategy, seed=k, start_s=0.0) for k in eval_seeds]
            results[strategy.name] = {"sr": summarise([e.sr for e in eps]),
                                      "accuracy": summarise([e.accuracy for e in eps]),
                                      "mean_latency_ms": summarise([e.mean_latency_ms for e in eps])}
    runs = []
    for seed in args.seeds:
        params = Args(seed=seed, epochs=args.epochs, **overrides)
        result = train(env, params)
        path = out / ("ddpg_seed%d.npz" % seed)
        result.agent.export(path, FEATURES, {"algorithm": "ddpg", "traces": [str(train_wave)], "seeds": [seed],
                                             "energy_unit": "mJ", "board": args.board})
        strategy = load_policy_strategy(path, env.n_exits, env.n_cuts, name="policy")
        eps = [test.run(strategy, seed=k, start_s=0.0) for k in eval_seeds]
        row = {"seed": seed, "train_seconds": round(result.seconds, 2), "tasks": result.tasks,
               "tasks_per_s": round(result.tasks / result.seconds, 1),
               "sr": float(np.mean([e.sr for e in eps])), "accuracy": float(np.mean([e.accuracy for e in eps])),
               "mean_latency_ms": float(np.mean([e.mean_latency_ms for e in eps])),
               "cut_shares": np.bincount(np.concatenate([e.per_task["cut"] for e in eps]),
                                         minlength=env.n_cuts).tolist()}
        if result.selection.epoch is not None:
            row["selected_epoch"] = result.selection.epoch + 1
            row["validation_sr"] = result.selection.sr
        if args.lineup:
            row["ablations"] = {}
            for ablated in ablations(strategy):
                eps = [test.run(ablated, seed=k, start_s=0.0) for k in eval_seeds]
                row["ablations"][ablated.name] = {"sr": float(np.mean([e.sr for e in eps])),
                                                  "accuracy": float(np.mean([e.accuracy for e in eps]))}
            best = max(list(results.values()) + list(row["ablations"].values()), key=lambda r: _mean(r["sr"]))
            row["highest_of_all"] = row["sr"] >= _mean(best["sr"]) - 1e-9
        if args.ablation:
            base = [greedy_episode(test, result.agent, FEATURES, k) for k in eval_seeds]
            extra_params = Args(seed=seed, epochs=args.epochs, **overrides,
                                features=tuple(FEATURES) + tuple(EXTRA_FEATURES))
            extra = train(env, extra_params)
            ext = [greedy_episode(test, extra.agent, extra_params.features, k) for k in eval_seeds]
            row["ablation"] = {"features": {"sr": float(np.mean([i["sr"] for i in base])),
                                            "accuracy": float(np.mean([i["accuracy"] for i in base]))},
                               "features+extras": {"sr": float(np.mean([i["sr"] for i in ext])),
                                                   "accuracy": float(np.mean([i["accuracy"] for i in ext]))}}
        runs.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    ddpg = {"sr": summarise([r["sr"] for r in runs]), "accuracy": summarise([r["accuracy"] for r in runs]),
            "mean_latency_ms": summarise([r["mean_latency_ms"] for r in runs])}
    neuro = results["neurosurgeon"]
    report = {
        "benchmark": "ddpg_fig9", "python": platform.python_version(), "torch": torch.__version__,
        "setting": {"board": args.board, "emulated": True, "energy": "emulated energy (mJ): the TX2 emulation has no "
                    "DVFS, so no GPU-frequency proxy", "workload_scale": args.workload_scale,
                    "link_scale": args.link_scale, "energy_bound_mj": args.energy_bound,
                    "energy_fraction": args.energy_fraction, "latency_bound_s": 0.1,
                    "rtt_s": env.scenario.rtt_s, "segment_ms": [round(1e3 * s, 2) for s in cost.main_s],
                    "cut_bytes": list(cost.cut_bytes), "train_recording": str(train_wave),
                    "heldout_recording": str(heldout_wave), "neurosurgeon_cut": neuro_cut,
                    "epochs": args.epochs, "seeds": args.seeds, "args_overrides": overrides,
                    "eval_seeds": list(eval_seeds),
                    "episode_tasks": 500},
        "baselines": results, "ddpg": ddpg, "runs": runs,
        "sr_ratio_ddpg_over_neurosurgeon": round(ddpg["sr"]["mean"] / max(1e-9, neuro["sr"]["mean"]), 3),
        "sr_ratio_min_over_seeds": round(ddpg["sr"]["min"] / max(1e-9, neuro["sr"]["mean"]), 3),
        "accuracy_points_vs_neurosurgeon": round(100 * (ddpg["accuracy"]["mean"] - neuro["accuracy"]["mean"]), 2),
    }
    if args.ablation:
        report["ablation"] = {k: {"sr": summarise([r["ablation"][k]["sr"] for r in runs]),
                                  "accuracy": summarise([r["ablation"][k]["accuracy"] for r in runs])}
                              for k in ("features", "features+extras")}
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
