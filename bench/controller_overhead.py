"""Controller overhead: controller + policy time per task as a share of the task's latency.

    python bench/controller_overhead.py [--tasks 500]

Runs the embedded bundle's held-out images through the real device loop with the shipped demo policy
(no peer: every task is local; the policy still decides from the state every action interval) and
times, per task, everything the controller does: ``Controller.action`` (state, policy forward pass and
decoding when the interval ends; ``Controller.decide_seconds`` is the policy part of it) and
``Controller.record`` (reward, transition). Two shares are printed as one JSON document:
- ``share_of_real_task``: of this machine's measured task latency (the tiny MNIST model: a harsh
  denominator of a few hundred microseconds);
- ``share_of_emulated_task``: of the same tasks paced to the demo's EMULATED Jetson Nano CPU with the
  VGG16-sized workload scale (the demo's denominator), the controller time itself still real.
EdgeML reports 7-20 ms per epoch, under 2 % of end-to-end latency.
"""
import argparse
import json
import platform
import sys
import time


from edgesplit.runtime.bundle.store import load_bundle
from edgesplit.runtime.controller.controller import Controller
from edgesplit.runtime.controller.reward import Bounds
from edgesplit.runtime.controller.strategies import load_policy_strategy
from edgesplit.runtime.default_bundle import DEMO_POLICY_FILE, default_bundle_path, load_heldout
from edgesplit.runtime.device.loop import DeviceLoop, run_stream
from edgesplit.runtime.emulation.board import load_emulated_board
from edgesplit.runtime.emulation.pacing import Emulation
from edgesplit.runtime.emulation.scenario import DEMO
from edgesplit.runtime.executor.executor import Executor


class TimedController(Controller):
    """The real controller, with the wall time of its per-task calls added up."""

    spent_s = 0.0

    def action(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return super().action(*args, **kwargs)
        finally:
            self.spent_s += time.perf_counter() - start

    def record(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return super().record(*args, **kwargs)
        finally:
            self.spent_s += time.perf_counter() - start


def run(bundle, images, labels, emulation=None):
    manifest = bundle.manifest
    n_side = len([e for e in manifest.exits if e.head is not None])
    strategy = load_policy_strategy(DEMO_POLICY_FILE, n_side, len(manifest.cuts))
    bounds = Bounds(DEMO["latency_bound_s"], DEMO["energy_bound_mj"])
    kwargs = {}
    clock = time.perf_counter
    if emulation is not None:
        kwargs["runner_factory"] = emulation.runner_factory()
        clock = emulation.clock
    executor = Executor(bundle, threads=1, clock=clock, **kwargs)
    controller = TimedController(strategy, bounds, clock=clock)
    loop = DeviceLoop(executor, controller, clock=clock,
                      sleep_until=emulation.sleep_until if emulation else None,
                      energy=emulation.energy if emulation else None, deadline_s=bounds.latency_s)
    results = run_stream(loop, images, labels)
    latency = sum(r.latency_s for r in results) / len(results)  # run clock: real or emulated seconds
    per_task = controller.spent_s / len(results)
    return {"tasks": len(results), "decisions": len(controller.decisions),
            "controller_us_per_task": round(1e6 * per_task, 2),
            "policy_us_per_decision": round(1e6 * controller.decide_seconds / max(1, len(controller.decisions)), 2),
            "mean_task_latency_ms": round(1e3 * latency, 3), "share": per_task / latency}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--emulated-tasks", type=int, default=100, help="tasks for the emulated leg (paced, slower)")
    args = parser.parse_args()
    bundle = load_bundle(default_bundle_path())
    images, labels = load_heldout()
    real = run(bundle, images[:args.tasks], labels[:args.tasks])
    emulation = Emulation(load_emulated_board(DEMO["board"]), workload_scale=DEMO["workload_scale"], speedup=1.0)
    emulated = run(bundle, images[:args.emulated_tasks], labels[:args.emulated_tasks], emulation)
    # The emulated leg's controller time is real; its task latency is emulated (speedup 1: also real seconds).
    print(json.dumps({"machine": platform.machine(), "python": platform.python_version(),
                      "policy": str(DEMO_POLICY_FILE.name),
                      "real": dict(real, share_of_real_task=round(real.pop("share"), 5)),
                      "emulated": dict(emulated, board=DEMO["board"] + " (emulated)",
                                       workload_scale=DEMO["workload_scale"],
                                       share_of_emulated_task=round(emulated.pop("share"), 6))}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
