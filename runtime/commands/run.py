"""``edgesplit run``: process a stream of inputs between this device and a peer, adaptively or statically."""
import argparse
import logging
import time

from edgesplit.policies_lite.provenance import recorded_bounds
from edgesplit.runtime.commands.output import print_json, print_table
from edgesplit.runtime.controller.reward import Bounds
from edgesplit.runtime.controller.flags import strategy_from_flags
from edgesplit.runtime.device.loop import run_stream
from edgesplit.runtime.default_bundle import resolve_bundle
from edgesplit.runtime.device.pipeline import LinkSetup, Pipeline, PipelineSettings, StoreSettings, detect_live_board
from edgesplit.runtime.device.summary import summarize
from edgesplit.runtime.emulation.board import load_emulated_board
from edgesplit.runtime.emulation.link.recording_readers import FORMATS
from edgesplit.runtime.emulation.pacing import Emulation
from edgesplit.runtime.errors import InputError
from edgesplit.runtime.inputs import check_labels, check_model_input, load_inputs
from edgesplit.runtime.profiling.store import load_profile as load_measured_profile
from edgesplit.runtime.segments.base import check_finite
from edgesplit.runtime.transport.endpoint import peer_endpoints

log = logging.getLogger(__name__)

LOCAL_ONLY = "local only (no --peer)"


def register(commands) -> None:
    parser = commands.add_parser(
        "run",
        description="Each row of --inputs is one task. Per task the controller's action (from a frozen policy, "
                    "or the static --cut/--thresholds) says where each early exit's entropy threshold lies and at "
                    "which cut the live tensors go to the peer; the task runs locally up to the cut and the peer "
                    "finishes it. When the peer is slow or gone the task finishes locally at the best exit still "
                    "reachable before its deadline and is marked as a fallback; offloading resumes when the peer "
                    "answers a probe again. Without --peer the run is local only: every task runs to its exit on "
                    "this device (the action's thresholds apply, its cut does not) and none is a fallback. "
                    "Every task and every controller transition is logged to --traces. Exit status 0 when every "
                    "task completed (fallbacks included).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  edgesplit run default --peer tcp://10.0.0.2:5555 --inputs x.npy --labels y.npy "
               "--policy policy.npz --traces run.db --json\n"
               "  edgesplit run default --peer tcp://127.0.0.1:5555 --inputs x.npy --cut 1 --thresholds 0.1,0.05 "
               "--board jetson_nano_cpu --link norway_car_3\n"
               "  edgesplit profile my_bundle --board rpi4 && edgesplit run my_bundle --inputs x.npy "
               "--board rpi4 --measured-profile rpi4")
    parser.add_argument("bundle", help="bundle directory, or 'default' for the embedded MNIST bundle")
    parser.add_argument("--peer", help="the peer's ZeroMQ endpoint: tcp://HOST:PORT, HOST:PORT or ipc://PATH; "
                                       "several, comma-separated, are tried in order (a pool's front ends: the "
                                       "first that answers takes the offloads); without it the run is local only "
                                       "(no task is offloaded or a fallback)")
    parser.add_argument("--inputs", required=True, help=".npy of inputs, batch axis first (one task per row)")
    parser.add_argument("--labels", help=".npy of integer labels (one per input): enables the accuracy figure")
    parser.add_argument("--policy", help="frozen EdgeML policy (.npz from edgesplit build-policy or training; demo: the shipped one)")
    parser.add_argument("--cut", type=int, help="static cut id (0 = send the input; last = all local). Without "
                                                "--cut or --policy every task stays on the device, even with --peer")
    parser.add_argument("--thresholds", help="static per-exit entropy thresholds, comma-separated (default: the "
                                             "manifest's)")
    parser.add_argument("--no-exits", action="store_true", help="static: ignore early exits (Neurosurgeon style)")
    parser.add_argument("--board", metavar="NAME",
                        help="EMULATE this board: a board config from 'edgesplit board list' (the same names as "
                             "'serve', 'profile' and 'board show'), paced to its [emulation] table's MACs per "
                             "second and energy model; without it this host runs at its own speed")
    parser.add_argument("--measured-profile", metavar="NAME",
                        help="with --board: pace each segment to its median in BUNDLE/profiles/NAME.json (measured by "
                             "'edgesplit profile BUNDLE --board NAME'; refused if the bundle changed since) instead "
                             "of the board's MACs-per-second model, which still paces any segment the profile "
                             "lacks; --board keeps giving the energy model. Results are labelled 'emulated "
                             "(measured profile NAME)'")
    parser.add_argument("--workload-scale", type=float, default=1.0,
                        help="with --board: pace each segment as if it had this many times its MACs, or its "
                             "measured time (default 1)")
    parser.add_argument("--speedup", type=float, default=1.0,
                        help="with --board: run emulated time this many times faster than real time (default 1)")
    parser.add_argument("--link", help="replay this bandwidth recording (file or shipped name, see 'edgesplit link --list-recordings') through an in-process "
                                       "software link between this device and --peer")
    parser.add_argument("--link-format", choices=FORMATS, default="auto",
                        help="with --link: the recording's format (default: detect; mahimahi .up/.down files included)")
    parser.add_argument("--link-scale", type=float, default=1.0, help="multiply the recording's rates (default 1)")
    parser.add_argument("--rtt-ms", type=float, default=20.0, help="with --link: base RTT (default 20 ms)")
    parser.add_argument("--period-ms", type=float, default=0.0,
                        help="a task arrives every this many ms (default 0: back to back)")
    parser.add_argument("--latency-bound-ms", type=float, default=100.0, help="latency bound per task (default 100)")
    parser.add_argument("--energy-bound", type=float, default=None,
                        help="energy bound per task in the board's unit (mJ when emulated); default: none")
    parser.add_argument("--deadline-ms", type=float, default=None,
                        help="task deadline after arrival, the offload timeout (default: the latency bound)")
    parser.add_argument("--traces", help="SQLite trace database to append this run to (default: none, nothing is "
                                         "logged)")
    parser.add_argument("--limit", type=int, help="only the first N inputs")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(handler=run_command)


def _labels(path, inputs_path, count, classes=None):
    if path is None:
        return None
    labels = load_inputs(path)
    check_labels(labels, count, classes, path, inputs_path)
    return labels


def bound_differences(provenance, bounds: Bounds) -> list:
    """Where the bounds a policy was made for (``bounds`` from train and search, ``latency_bound_s`` and
    ``energy_bound`` from build-policy) differ from this run's; none when the policy records none."""
    made = recorded_bounds(provenance)
    found = []
    latency = made.get("latency_s")
    if isinstance(latency, (int, float)) and abs(latency - bounds.latency_s) > 1e-9:
        found.append("made for a %g ms latency bound, run at %g ms" % (1e3 * latency, 1e3 * bounds.latency_s))
    if "energy" in made:
        energy = made["energy"]
        energy = float("inf") if energy is None else energy
        if isinstance(energy, (int, float)) and energy != bounds.energy:
            found.append("made for %s, run with %s" % (
                "no energy bound" if energy == float("inf") else "a %g energy bound" % energy,
                "no energy bound" if bounds.energy == float("inf") else "a %g energy bound" % bounds.energy))
    return found


def build_strategy(args, bundle):
    return strategy_from_flags(bundle.manifest, policy=args.policy, cut=args.cut, thresholds=args.thresholds,
                               no_exits=args.no_exits, emulated_board=args.board, bundle=bundle)


def make_emulation(args, bundle):
    if args.board is None:
        if args.workload_scale != 1.0 or args.speedup != 1.0 or args.measured_profile:
            raise InputError("--workload-scale, --speedup and --measured-profile need --board (they pace an emulated "
                             "board, whose power model gives the energy)")
        return None
    measured = load_measured_profile(bundle, args.measured_profile) if args.measured_profile else None
    return Emulation(load_emulated_board(args.board), workload_scale=args.workload_scale, speedup=args.speedup,
                     measured=measured)


def run_command(args) -> int:
    if args.peer:
        args.peer = ",".join(peer_endpoints(args.peer, "--peer"))
        if args.policy is None and args.cut is None:
            log.warning("--peer without --cut or --policy: the action is local, so no task is offloaded; give "
                        "--cut N (0 sends the input) or --policy FILE to use the peer")
    bundle = resolve_bundle(args.bundle)
    inputs = load_inputs(args.inputs)
    if args.limit:
        inputs = inputs[:args.limit]
    check_model_input(inputs, bundle.manifest.inputs[0], args.inputs, "bundle %s" % bundle.manifest.name)
    check_finite(bundle.manifest.inputs[0].name, inputs, args.inputs)
    labels = _labels(args.labels, args.inputs, load_inputs(args.inputs).shape[0], bundle.manifest.outputs[0].shape[-1])
    if labels is not None and args.limit:
        labels = labels[:args.limit]
    strategy = build_strategy(args, bundle)
    emulation = make_emulation(args, bundle)
    link = None
    if args.link:
        if not args.peer:
            raise InputError("--link needs --peer: the link relays to the peer")
        from edgesplit.runtime.emulation.link.shipped import resolve_recording
        from edgesplit.runtime.emulation.link.recording_readers import read_recording

        link = LinkSetup(read_recording(resolve_recording(args.link), args.link_format), rtt_s=args.rtt_ms / 1e3,
                         link_scale=args.link_scale, name=args.link)
    energy_bounded = args.energy_bound is not None
    bounds = Bounds(args.latency_bound_ms / 1e3, args.energy_bound if energy_bounded else float("inf"))
    for difference in bound_differences(getattr(getattr(strategy, "policy", None), "provenance", None) or {},
                                        bounds):
        log.warning("--policy %s: %s: the SR below is counted against bounds it was not made for (give "
                    "--latency-bound-ms and --energy-bound as 'edgesplit policy show' lists them)", args.policy,
                    difference)
    deadline = None if args.deadline_ms is None else args.deadline_ms / 1e3
    # Not emulated: this machine's own board config (providers, threads, sensors and energy proxy).
    board = detect_live_board() if emulation is None else None
    settings = PipelineSettings(board=board, emulation=emulation, peer=args.peer, link=link, deadline_s=deadline,
                                store=StoreSettings(args.traces) if args.traces else None,
                                run_config={"command": "run", "inputs": args.inputs})
    with Pipeline(bundle, strategy, bounds, settings) as pipeline:
        if pipeline.relay is not None:
            # The recording's first second is the first task's, as in the demo (not the relay's set-up time).
            pipeline.relay.link.schedule.start = time.monotonic()
        results = run_stream(pipeline.loop, inputs, labels, period_s=args.period_ms / 1e3)
        live = pipeline.describe()
        report = summarize(results, bounds, len(bundle.manifest.exits), energy_bounded)
    report.update({"strategy": strategy.name, "policy_id": strategy.policy_id, "bundle_sha256": bundle.hash,
                   "latency_bound_ms": args.latency_bound_ms, "energy_bound": args.energy_bound,
                   "emulation": emulation.describe() if emulation else {"emulated": False},
                   "link": link.describe() if link else None, "traces": args.traces,
                   "board": live["board"], "providers": live["providers"], "sensors": live["sensors"],
                   "peer": args.peer, "mode": "split with peer %s" % args.peer if args.peer else LOCAL_ONLY})
    if args.json:
        print_json(report)
    else:
        label = " (EMULATED %s)" % args.board if args.board else ""
        if emulation is not None and args.measured_profile:
            label = " (%s; energy model of board %s)" % (emulation.label, args.board)
        if not args.peer:
            label += ", " + LOCAL_ONLY
        print("%d tasks, %d completed, %d fallbacks, %d offloaded%s" % (report["tasks"], report["completed"],
                                                                       report["fallbacks"], report["offloaded"], label))
        # which strategy decided: a policy by file and id, or the static action
        source = getattr(getattr(strategy, "policy", None), "source", None)
        print("strategy: %s%s" % (strategy.name, " from %s (%s)" % (source, strategy.policy_id) if source else ""))
        energy_column = report.get("sr_energy") is not None  # only when --energy-bound set a bound to meet
        print_table(("SR", "SR latency") + (("SR energy",) if energy_column else ()) + (
            "accuracy", "mean ms", "p95 ms", "bytes sent"), [(
                ("%.1f%%" % (100 * report["sr"]), "%.1f%%" % (100 * report["sr_latency"]))
                + (("%.1f%%" % (100 * report["sr_energy"]),) if energy_column else ())
                + ("-" if report["accuracy"] is None else "%.1f%%" % (100 * report["accuracy"]),
                   "%.1f" % report["mean_latency_ms"], "%.1f" % report["p95_latency_ms"], report["bytes_sent"]))])
        if args.traces:
            print("traces: %s" % args.traces)
    return 0 if report["completed"] == report["tasks"] else 1
