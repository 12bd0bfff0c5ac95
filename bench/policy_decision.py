"""Microseconds per policy decision, against a bare numpy floor measured in the same run.

    python bench/policy_decision.py [--number 20000] [--repeat 7]

Prints one JSON document. "floor" is the cheapest honest forward pass of the same 8-64-64-5 tanh MLP
(three matmuls, bias adds and tanh, no normalisation, no decoding, no checks; "floor_linear" likewise
one matmul and add); "decide" is the full
``FrozenPolicy.decide(x)``: input check, normalised forward pass and the EdgeML action decoder.
Timings interleave the candidates round by round and keep each one's best round, so background load
on a shared machine hits all of them alike. Acceptance: decide / floor <= 2.
"""
import argparse
import json
import platform
import sys
import tempfile

from pathlib import Path

import numpy as np


from edgesplit.policies_lite import edgeml_decoder, load_policy, save_policy, task_choice_decoder
from timing import add_timing_arguments, measure

FEATURES = ["latency_mean_s", "energy_mean", "bandwidth_mean_bps", "rtt_s", "queue_len", "gpu_freq_hz",
            "temperature_c", "peer_alive"]
ACCEPTANCE_RATIO = 2.0


def _mlp_layers(rng, sizes):
    return [(rng.standard_normal((n_out, n_in)) / np.sqrt(n_in), rng.standard_normal(n_out) * 0.1)
            for n_in, n_out in zip(sizes[:-1], sizes[1:])]


def build_policies(rng, directory: Path):
    provenance = {"traces": [], "algorithm": "random (benchmark)"}
    mean, std = rng.standard_normal(8), rng.random(8) + 0.5
    mlp_layers = _mlp_layers(rng, [8, 64, 64, 5])
    save_policy(directory / "mlp.npz", features=FEATURES, layers=mlp_layers,
                activations=["tanh", "tanh", "identity"], decoder=edgeml_decoder(n_exits=3, n_cuts=4),
                mean=mean, std=std, provenance=provenance)
    linear_layers = _mlp_layers(rng, [8, 5])
    save_policy(directory / "linear.npz", features=FEATURES, layers=linear_layers,
                activations=["identity"], decoder=edgeml_decoder(n_exits=3, n_cuts=4), mean=mean, std=std,
                provenance=provenance)
    choices = [(e, c) for e in range(3) for c in [None, 0, 1, 2, 3]][:5]
    save_policy(directory / "choice.npz", features=FEATURES, layers=mlp_layers,
                activations=["tanh", "tanh", "identity"], decoder=task_choice_decoder(choices),
                mean=mean, std=std, provenance=provenance)
    return (load_policy(directory / "mlp.npz"), load_policy(directory / "linear.npz"),
            load_policy(directory / "choice.npz"), mlp_layers, linear_layers[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_timing_arguments(parser)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        mlp, linear, choice, layers, (wl, bl) = build_policies(rng, Path(tmp))
    (w1, b1), (w2, b2), (w3, b3) = layers
    tanh = np.tanh
    x = rng.standard_normal(8)
    measurements = dict(zip(FEATURES, x.tolist()))

    candidates = {
        "floor_mlp_8_64_64_5": lambda: w3 @ tanh(w2 @ tanh(w1 @ x + b1) + b2) + b3,
        "floor_linear_8_5": lambda: wl @ x + bl,
        "mlp_decide_edgeml": lambda: mlp.decide(x),
        "mlp_decide_task_choice": lambda: choice.decide(x),
        "mlp_evaluate_raw": lambda: mlp.evaluate(x),
        "linear_decide_edgeml": lambda: linear.decide(x),
        "mlp_decide_from_mapping": lambda: mlp.decide_from(measurements),
    }
    us = measure(candidates, args.number, args.repeat)
    floor = us["floor_mlp_8_64_64_5"]
    ratio = us["mlp_decide_edgeml"] / floor
    report = {
        "benchmark": "policy_decision",
        "python": platform.python_version(), "numpy": np.__version__, "machine": platform.machine(),
        "number": args.number, "repeat": args.repeat,
        "us_per_decision": {k: round(v, 3) for k, v in us.items()},
        "ratio_mlp_decide_over_floor": round(ratio, 3),
        "ratio_mlp_task_choice_over_floor": round(us["mlp_decide_task_choice"] / floor, 3),
        "ratio_linear_decide_over_floor_mlp": round(us["linear_decide_edgeml"] / floor, 3),
        "acceptance_max_ratio": ACCEPTANCE_RATIO,
        "pass": ratio <= ACCEPTANCE_RATIO,
    }
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0 if report["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
