"""The controller's per-task cost under a static action (interval 1, no trace store): ``action`` then ``record``.

What every local task pays for the EdgeML loop's bookkeeping (the reward of a one-task interval, the state window,
``remote_share``'s memory, the decision's record), alone, without the executor. For a before/after comparison run it
under two trees with ``farm-bench`` (its process time) and compare the printed ``us_per_task`` of the same runs.

    python bench/controller_cost.py --tasks 200000
"""
import argparse
import collections
import sys
import time

from report import emit, header


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=200000)
    parser.add_argument("--out", help="also write the JSON document here")
    args = parser.parse_args()

    from edgesplit.runtime.controller.controller import Controller
    from edgesplit.runtime.controller.reward import Bounds, TaskOutcome
    from edgesplit.runtime.controller.strategies import Action, StaticStrategy

    controller = Controller(StaticStrategy("local", Action((0.3, 0.6), 3, 1, True)), Bounds(0.1, 900.0))
    controller.decisions = collections.deque(maxlen=64)  # as the daemon bounds its decision log (daemon/serving.py)
    outcome = TaskOutcome(0.05, 500.0, 1e6, 2, 3)
    started = time.perf_counter()
    cpu = time.process_time()
    for task in range(args.tasks):
        controller.action(True, 1e6, task)
        controller.record(outcome, task)
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu
    report = header("controller_cost")
    report.update({"tasks": args.tasks, "us_per_task": wall / args.tasks * 1e6, "cpu_us_per_task": cpu / args.tasks * 1e6})
    emit(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
