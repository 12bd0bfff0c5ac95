"""Tasks simulated per second by the virtual-time environment, on the demo's scenario.

Three ways a training or evaluation run drives it: ``run`` with a static strategy (one decision per
task), ``run`` with the shipped frozen policy (a numpy MLP per decision), and ``reset``/``step`` with
random EdgeML actions (what DDPG does). Prints JSON: tasks per second for each (best of --repeat), and
the minutes 1000 epochs of 500 tasks would take at the step rate.

    .venv/bin/python bench/environment_speed.py --episodes 20
"""
import argparse
import json
import platform
import sys
import time

import numpy as np

from edgesplit.codegen.learning.environment import Environment, demo_scenario
from edgesplit.runtime.controller.strategies import Action, load_policy_strategy, remote_only
from edgesplit.runtime.default_bundle import DEMO_POLICY_FILE


def tasks_per_s(episode, episodes: int, repeat: int) -> float:
    best = 0.0
    for _ in range(repeat):
        started = time.perf_counter()
        tasks = sum(episode(seed) for seed in range(episodes))
        best = max(best, tasks / (time.perf_counter() - started))
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=20, help="episodes (500 tasks each) per measurement")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    started = time.perf_counter()
    env = Environment(demo_scenario())
    setup_s = time.perf_counter() - started
    policy = load_policy_strategy(str(DEMO_POLICY_FILE), env.n_exits, env.n_cuts)
    static = remote_only(env.n_exits)
    rng = np.random.RandomState(0)

    def stepped(seed: int) -> int:
        env.reset(seed=seed)
        while True:
            action = Action(tuple(rng.uniform(0, 1, env.n_exits)), int(rng.randint(env.n_cuts)),
                            int(rng.randint(1, env.max_interval + 1)))
            step = env.step(action)
            if step.done:
                return step.info["tasks"]

    rates = {"run_static": tasks_per_s(lambda s: env.run(static, seed=s, start_s=None).tasks, args.episodes,
                                       args.repeat),
             "run_policy": tasks_per_s(lambda s: env.run(policy, seed=s, start_s=None).tasks, args.episodes,
                                       args.repeat),
             "step_random_actions": tasks_per_s(stepped, args.episodes, args.repeat)}
    print(json.dumps({"bench": "environment_speed", "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                      "machine": "%s, python %s" % (platform.machine(), platform.python_version()),
                      "scenario": "demo (default bundle, jetson_nano_cpu x112, norway_car_3 x0.255, 500 tasks)",
                      "setup_s": round(setup_s, 2), "tasks_per_s": {k: round(v) for k, v in rates.items()},
                      "minutes_for_1000_epochs_of_500_tasks": round(1000 * 500 / rates["step_random_actions"] / 60, 2)},
                     indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
