"""EdgeML 5.3.3 in the learning environment: carry the MDP traces of a TX2's training to a Nano, vs from scratch.

    python bench/ddpg_transfer.py [--seeds 0 1 2 3 4] [--source-epochs 1000] [--target-epochs 200]
                                  [--plot OUT.png] [--out-dir DIR]

The Fig. 9 setting of ``bench/ddpg_fig9.py`` (default bundle x 2000, 15/6 Mbit/s square wave x
0.047, 0.1 s bound, the same energy bound in mJ). Per seed: DDPG trains ``--source-epochs`` on the EMULATED
``jetson_tx2`` and writes its transitions to a trace database (``train --write-traces``); then on
the EMULATED ``jetson_nano`` (GPU, 2.8x slower, 10 W busy) two agents train ``--target-epochs``
each: one from scratch, one with the TX2 database read back through ``train --from-traces``'s
reader (its transitions in the replay buffer, ``pretrain_updates`` steps on them, no random warm-up),
and the same with the random warm-up kept (``Args.warmup_with_traces``).
Reports the cumulative SR and accuracy over the target epochs (EdgeML Fig. 13), per seed and their
mean, and plots the mean curves with their spread. Prints one JSON document.
"""
import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from edgesplit.codegen.learning.ddpg import Args, train
from edgesplit.codegen.learning.environment import Environment, Scenario
from edgesplit.codegen.learning.trace_transitions import read_transitions, write_transitions
from edgesplit.runtime.controller.state import EDGEML_FEATURES as FEATURES  # what DDPG reads
from edgesplit.runtime.default_bundle import default_bundle_path, resolve_bundle

from ddpg_fig9 import write_square


def cumulative(log_):
    a = log_.to_arrays()
    tasks = np.cumsum(a["tasks"])
    return np.cumsum(a["met"]) / np.maximum(tasks, 1), np.cumsum(a["correct"]) / np.maximum(tasks, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--source-epochs", type=int, default=1000)
    parser.add_argument("--target-epochs", type=int, default=200)
    parser.add_argument("--source", default="jetson_tx2")
    parser.add_argument("--target", default="jetson_nano")
    parser.add_argument("--workload-scale", type=float, default=2000.0)
    parser.add_argument("--link-scale", type=float, default=0.047)
    parser.add_argument("--energy-bound", type=float,
                        help="mJ per task; default: 1.2/1.3 x the whole model's energy run locally on --source "
                             "(bench/ddpg_fig9.py's default)")
    parser.add_argument("--plot", help="PNG of the cumulative SR and accuracy curves")
    parser.add_argument("--out-dir")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out_dir or tempfile.mkdtemp(prefix="transfer_"))
    out.mkdir(parents=True, exist_ok=True)
    wave = write_square(out / "square_train.txt", 20, 200, low_first=False)
    common = dict(bundle_dir=default_bundle_path(), recordings=[wave], link_scale=args.link_scale,
                  workload_scale=args.workload_scale, latency_bound_s=0.1, period_s=0.1, episode_tasks=500)
    if args.energy_bound is None:
        probe = Environment(Scenario(board=args.source, **common), seed=0)
        args.energy_bound = round(1.2 / 1.3 * probe.static.board.energy_mj(sum(probe.static.cost.main_s), 0.0), 1)
    common["energy_bound"] = args.energy_bound
    source = Environment(Scenario(board=args.source, **common), seed=0)
    target = Environment(Scenario(board=args.target, **common), seed=0)
    bundle_hash = resolve_bundle("default").hash
    curves = {"scratch": [], "transfer": [], "transfer_warmup": []}
    runs = []
    for seed in args.seeds:
        trained = train(source, Args(seed=seed, epochs=args.source_epochs))
        db = out / ("%s_seed%d.db" % (args.source, seed))
        if db.exists():
            db.unlink()
        write_transitions(db, trained.logged, trained.agent.codec, bundle_hash, "%s (emulated)" % args.source,
                          FEATURES, "mJ", {"command": "bench/ddpg_transfer.py", "seed": seed})
        offline = read_transitions([db], bundle_hash, FEATURES, "mJ", trained.agent.codec)
        row = {"seed": seed, "source_transitions": int(len(offline.reward))}
        for name, kwargs, extra in (("scratch", {}, {}), ("transfer", {"offline": offline}, {}),
                                    ("transfer_warmup", {"offline": offline}, {"warmup_with_traces": True})):
            # Another seed for the target run than for the source run: the target's episodes are its own.
            result = train(target, Args(seed=1000 + seed, epochs=args.target_epochs, **extra), **kwargs)
            sr, accuracy = cumulative(result.log)
            curves[name].append((sr, accuracy))
            row[name] = {"cumulative_sr": round(float(sr[-1]), 4), "cumulative_accuracy": round(float(accuracy[-1]), 4),
                         "sr_at_50": round(float(sr[min(49, len(sr) - 1)]), 4),
                         "sr_at_100": round(float(sr[min(99, len(sr) - 1)]), 4)}
        runs.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    summary = {}
    for name in curves:
        sr = np.array([c[0] for c in curves[name]])
        acc = np.array([c[1] for c in curves[name]])
        summary[name] = {"cumulative_sr": {"mean": round(float(sr[:, -1].mean()), 4),
                                           "std": round(float(sr[:, -1].std()), 4)},
                         "cumulative_accuracy": {"mean": round(float(acc[:, -1].mean()), 4),
                                                 "std": round(float(acc[:, -1].std()), 4)}}
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
        epochs = np.arange(1, args.target_epochs + 1)
        labels = {"scratch": "from scratch", "transfer": "with %s's MDP traces" % args.source,
                  "transfer_warmup": "with %s's MDP traces, random warm-up" % args.source}
        for name, color in (("scratch", "tab:gray"), ("transfer", "tab:blue"), ("transfer_warmup", "tab:orange")):
            for k, label in ((0, "cumulative SR"), (1, "cumulative accuracy")):
                values = np.array([c[k] for c in curves[name]])
                axes[k].plot(epochs, values.mean(axis=0), color=color,
                             label="%s (%s)" % (labels[name], args.target))
                axes[k].fill_between(epochs, values.min(axis=0), values.max(axis=0), color=color, alpha=0.2)
                axes[k].set_xlabel("epoch on %s (emulated)" % args.target)
                axes[k].set_ylabel(label)
        axes[0].legend(loc="lower right", fontsize=8)
        fig.suptitle("DDPG transfer %s -> %s, %d seeds (mean, min-max band)" % (args.source, args.target,
                                                                                len(args.seeds)), fontsize=10)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=110)
    report = {"benchmark": "ddpg_transfer", "source": args.source, "target": args.target,
              "source_epochs": args.source_epochs, "target_epochs": args.target_epochs, "seeds": args.seeds,
              "setting": {"workload_scale": args.workload_scale, "link_scale": args.link_scale,
                          "energy_bound_mj": args.energy_bound, "latency_bound_s": 0.1, "recording": str(wave)},
              "summary": summary, "runs": runs, "plot": args.plot}
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
