"""Microseconds per decision of the frozen DDPG actor (``edgesplit train``), against a bare numpy floor in the same run.

    python bench/actor_decision.py [--number 20000] [--repeat 7] [--policy P.npz]

Prints one JSON document. The actor is what ``codegen/learning/ddpg.py`` exports: the runtime's 4
state features -> 64 tanh -> 64 tanh -> n_exits + 2 sigmoid, decoded by policies_lite's edgeml decoder
(``thresholds: clip``, ``scale: unit``). Without --policy it is built with random weights of those
shapes for the default bundle (2 side exits, 4 cuts), so the bench needs no torch and runs on the
board's Python 3.8. "floor" is the same three layers as plain numpy expressions (matmul, bias add,
tanh, tanh, the sigmoid as 0.5 + 0.5 tanh(z / 2)), no normalisation, no decoding, no checks;
"decide" is the full ``FrozenPolicy.decide(x)``: input check, normalised forward pass, decoder.
"decide_from" builds the vector from the controller's state mapping first, as the controller does.
Acceptance: decide / floor <= 2.
"""
import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np

from edgesplit.policies_lite import edgeml_decoder, load_policy, save_policy
from timing import add_timing_arguments, measure

FEATURES = ["latency_mean_s", "energy_mean", "bandwidth_mbps", "peer_alive"]
ACTIVATIONS = ["tanh", "tanh", "sigmoid"]  # codegen/learning/ddpg.py ACTOR_ACTIVATIONS
ACCEPTANCE_RATIO = 2.0


def build_actor(rng, directory: Path, n_exits: int = 2, n_cuts: int = 4):
    sizes = [len(FEATURES), 64, 64, n_exits + 2]
    layers = [(rng.standard_normal((n_out, n_in)) / np.sqrt(n_in), rng.standard_normal(n_out) * 0.1)
              for n_in, n_out in zip(sizes[:-1], sizes[1:])]
    save_policy(directory / "actor.npz", features=FEATURES, layers=layers, activations=ACTIVATIONS,
                decoder=edgeml_decoder(n_exits, n_cuts, 5, thresholds="clip", scale="unit"),
                mean=[0.08, 500.0, 1.0, 1.0], std=[0.03, 200.0, 0.5, 1.0],
                provenance={"traces": [], "algorithm": "ddpg (random weights, benchmark)"})
    return directory / "actor.npz"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_timing_arguments(parser)
    parser.add_argument("--policy", help="a trained actor (.npz from edgesplit train) instead of random weights")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.policy) if args.policy else build_actor(rng, Path(tmp))
        policy = load_policy(path)
        from edgesplit.policies_lite import read_policy_file

        spec, arrays = read_policy_file(path)
    if list(spec.activations) != ACTIVATIONS:
        raise SystemExit("%s: activations %s, not the DDPG actor's %s" % (path, list(spec.activations), ACTIVATIONS))
    (w1, b1), (w2, b2), (w3, b3) = [(arrays["W%d" % i].astype(np.float64), arrays["b%d" % i].astype(np.float64))
                                    for i in range(3)]
    tanh = np.tanh
    x = np.array([0.08, 450.0, 1.2, 1.0])
    state = dict(zip(spec.features, x.tolist()))

    candidates = {
        "floor_actor": lambda: 0.5 + 0.5 * tanh(0.5 * (w3 @ tanh(w2 @ tanh(w1 @ x + b1) + b2) + b3)),
        "decide": lambda: policy.decide(x),
        "evaluate_raw": lambda: policy.evaluate(x),
        "decide_from_state": lambda: policy.decide_from(state),
    }
    us = measure(candidates, args.number, args.repeat)
    ratio = us["decide"] / us["floor_actor"]
    report = {
        "benchmark": "actor_decision",
        "python": platform.python_version(), "numpy": np.__version__, "machine": platform.machine(),
        "number": args.number, "repeat": args.repeat,
        "policy": str(args.policy) if args.policy else "random weights, %s" % list(spec.layer_sizes),
        "layer_sizes": list(spec.layer_sizes), "activations": list(spec.activations),
        "us_per_decision": {k: round(v, 3) for k, v in us.items()},
        "ratio_decide_over_floor": round(ratio, 3),
        "ratio_decide_from_state_over_floor": round(us["decide_from_state"] / us["floor_actor"], 3),
        "acceptance_max_ratio": ACCEPTANCE_RATIO,
        "pass": ratio <= ACCEPTANCE_RATIO,
    }
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0 if report["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
