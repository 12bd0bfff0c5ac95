"""Microseconds per LinUCB choice (A = 10 arms, d = 4) and per feedback, against a bare numpy floor.

    python bench/bandit_choice.py [--number 20000] [--repeat 7]

Prints one JSON document. "floor_choice" is the cheapest honest numpy version of eq. (8)/(9) on the
same arrays: two matrix products, the row-wise quadratic form, sqrt, argmax, no checks.
"choose" is ``LinUCB.choose(contexts)`` with its input check; "choose_labelled" also counts the arm;
"update" is one Sherman-Morrison feedback (eq. 6/7). Timings interleave the candidates round by round
and keep each one's best round, so background load hits all of them alike. Acceptance: choose <= 20 us.
"""
import argparse
import json
import platform
import sys

import numpy as np

from edgesplit.policies_lite.linucb import LinUCB, LinUCBConfig
from timing import add_timing_arguments, measure

ACCEPTANCE_US = 20.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_timing_arguments(parser)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    arms, dim = 10, 4
    learner = LinUCB(LinUCBConfig(dim=dim), seed=0)
    theta = np.array([-0.5, 0.37, -0.36, 0.69])
    for _ in range(200):
        x = rng.random(dim)
        learner.update(x, float(x @ theta + rng.normal(0, 0.6)), int(rng.integers(1, 41)))
    contexts = rng.random((arms, dim))
    labels = ["arm%d" % i for i in range(arms)]
    cov, mean_theta, alpha = learner.covariance, learner.theta, learner.config.alpha
    sqrt, argmax = np.sqrt, np.argmax
    x = contexts[3]

    candidates = {
        "floor_choice": lambda: argmax(contexts @ mean_theta + alpha * sqrt(((contexts @ cov) * contexts).sum(1))),
        "choose": lambda: learner.choose(contexts),
        "choose_labelled": lambda: learner.choose(contexts, labels),
        "update": lambda: learner.update(x, 0.3, 17),
    }
    us = measure(candidates, args.number, args.repeat)
    report = {
        "benchmark": "bandit_choice",
        "python": platform.python_version(), "numpy": np.__version__, "machine": platform.machine(),
        "arms": arms, "dim": dim, "number": args.number, "repeat": args.repeat,
        "us_per_call": {k: round(v, 3) for k, v in us.items()},
        "ratio_choose_over_floor": round(us["choose"] / us["floor_choice"], 3),
        "acceptance_max_us": ACCEPTANCE_US,
        "pass": us["choose"] <= ACCEPTANCE_US,
    }
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0 if report["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
