"""Local actions alone, on the board: SR and accuracy of one threshold for every exit, against two-threshold ones.

A local action (every task on the board, the last cut) does not depend on the link, so this runs the learning
environment's demo scenario (emulated Jetson Nano CPU, workload x112, 100 ms / 900 mJ, one task per 100 ms) on
its one recording. For each threshold t in ``--thresholds`` it runs the static action (t, ..., t) on ``--seeds``
input draws of ``--tasks`` tasks, and the same for the ``--pairs`` given (e.g. MOEA's (0.31, 0.62)) and the final
exit alone. It prints one JSON document (docs/learning.md, "A fourth look").

    python bench/local_action_frontier.py --seeds 8 --tasks 500
"""
import argparse
import sys
import time

from report import emit, header


def main() -> int:
    from edgesplit.codegen.learning.environment import Environment, demo_scenario
    from edgesplit.runtime.controller.strategies import Action, StaticStrategy

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--thresholds", type=float, nargs="+",
                        default=[0.32, 0.34, 0.36, 0.38, 0.40, 0.42, 0.44, 0.46, 0.48, 0.50])
    parser.add_argument("--pairs", nargs="*", default=["0.31,0.62"], help="per-exit thresholds, comma-separated")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--tasks", type=int, default=500)
    args = parser.parse_args()
    scenario = demo_scenario()
    scenario.episode_tasks = args.tasks
    env = Environment(scenario)
    started = time.monotonic()

    def run(thresholds):
        strategy = StaticStrategy("local", Action(tuple(thresholds), env.n_cuts - 1, 1, True))
        episodes = [env.run(strategy, seed=seed) for seed in range(args.seeds)]
        srs = [e.sr for e in episodes]
        accuracies = [e.accuracy for e in episodes]
        return {"thresholds": list(thresholds), "sr": sum(srs) / len(srs), "sr_min": min(srs), "sr_max": max(srs),
                "accuracy": sum(accuracies) / len(accuracies), "accuracy_min": min(accuracies),
                "accuracy_max": max(accuracies)}

    rows = [dict(run([t] * env.n_exits), kind="one threshold") for t in args.thresholds]
    rows += [dict(run([float(v) for v in pair.split(",")]), kind="per exit") for pair in args.pairs]
    rows.append(dict(run([0.0] * env.n_exits), kind="final exit alone"))
    emit(dict(header("local_action_frontier"), **{
                      "scenario": "demo_scenario (jetson_nano_cpu x112, 100 ms, 900 mJ, period 100 ms), last cut",
                      "seeds": args.seeds, "tasks": args.tasks, "rows": rows,
                      "wall_s": round(time.monotonic() - started, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
