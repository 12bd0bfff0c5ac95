"""Training-side probe: is it the search's objective or its optimiser? Score policies with ``search.score``.

Every policy is scored on the same episodes the search draws (``draw_episodes``: random training recordings from
random seconds, random input seeds) with the search's own score (``codegen/learning/search.py``: SR under the
accuracy floors, the ablations' leads), the references and floors computed as ``train --algo search`` computes them.
A policy the search never reached that scores above the one it froze says the optimiser, not the objective, is what
kept it away. Only training recordings are read (``trace_split``; the validation ones are left out, as the search
leaves them out of its episodes). Prints one JSON document.

    python bench/search_objective_probe.py --policy bench/results/search_look5_memory_seed0_2026-11-30.npz --out R.json
"""
import argparse
import sys
from pathlib import Path

from report import emit, header

ROOT = Path(__file__).resolve().parents[1]
# Hand-built policies (GatedPolicy fields), the fifth look's training-side check (docs/learning.md).
HAND = {
    "hand, memory (MOEA's local, 0.7 Mbit/s gate, fast 0.5 from a 0.5 share)":
        dict(local_thresholds=(0.31, 0.62), local_cut=3, remote_thresholds=(0.0, 0.0), remote_cut=0, gate_mbps=0.7,
             interval=1, fast_threshold=0.5, share_gate=0.5),
    "hand, no memory (MOEA's local, 0.7 Mbit/s gate)":
        dict(local_thresholds=(0.31, 0.62), local_cut=3, remote_thresholds=(0.0, 0.0), remote_cut=0, gate_mbps=0.7,
             interval=1),
}


def main() -> int:
    from edgesplit.codegen.learning.trace_split import shared_traces_dir, split

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", nargs="*", default=[], help="search policy files (their provenance's gated_policy)")
    parser.add_argument("--traces-dir", default=str(shared_traces_dir(ROOT)), help="the shared traces folder")
    parser.add_argument("--episodes", type=int, default=24, help="episodes drawn (the search draws 12 a generation)")
    parser.add_argument("--episode-tasks", type=int, default=400)
    parser.add_argument("--link-mean-mbps", type=float, default=1.0)
    parser.add_argument("--recording-speed", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=5, help="draws the episodes")
    parser.add_argument("--out", help="also write the JSON document here")
    args = parser.parse_args()

    import numpy as np

    from edgesplit.codegen.learning import search_command
    from edgesplit.codegen.learning.environment import Environment
    from edgesplit.codegen.learning.search import (Args, GatedPolicy, draw_episodes, final_exit_accuracy,
                                                    reference_accuracy, score)
    from edgesplit.policies_lite import load_policy
    from edgesplit.runtime.cli import build_parser
    from edgesplit.runtime.controller.strategies import local_only, remote_only
    from edgesplit.runtime.default_bundle import resolve_bundle

    training, _ = split(Path(args.traces_dir))
    argv = (["train", "--algo", "search", "--board", "jetson_nano_cpu", "--workload-scale", "112", "--energy-bound",
             "900", "--latency-bound-ms", "100", "--link-traces"] + [str(p) for p in training]
            + ["--link-mean-mbps", str(args.link_mean_mbps), "--recording-speed", str(args.recording_speed),
               "--episode-tasks", str(args.episode_tasks), "--seed", "0", "--out", "unused.npz"])
    train_args = build_parser(argv).parse_args(argv)
    bundle = resolve_bundle(train_args.bundle)
    fit, validation = search_command.split_recordings(train_args.link_traces, [])
    env = Environment(search_command._scenario(train_args, bundle, fit, args.episode_tasks), seed=0)
    side = [e.threshold for e in env.static.bundle.manifest.exits if e.head is not None]
    references = [local_only(env.n_exits, env.n_cuts - 1, side), remote_only(env.n_exits)]
    specs = draw_episodes(env, args.episodes, np.random.RandomState(args.seed))
    reference = reference_accuracy(env, references, specs)
    ceiling = final_exit_accuracy(env, specs)
    policies = {name: GatedPolicy(**fields) for name, fields in HAND.items()}
    for path in args.policy:
        policies[path] = GatedPolicy.from_description(load_policy(path).provenance["gated_policy"])
    rows = []
    for name, policy in policies.items():
        s = score(env, policy, specs, reference, Args(memory=policy.memory), ceiling)
        rows.append({"policy": name, "gated_policy": policy.describe(), "score": s.to_dict()})
        print("%-70s value %.4f  sr %.4f  accuracy %.4f" % (name[-70:], s.value, s.sr, s.accuracy), file=sys.stderr)
    report = header("search_objective_probe")
    report.update({"training_recordings": len(fit), "validation_recordings_left_out": len(validation),
                   "episodes": args.episodes, "episode_tasks": args.episode_tasks, "seed": args.seed,
                   "reference_accuracy": reference, "final_exit_accuracy": ceiling, "results": rows})
    emit(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
