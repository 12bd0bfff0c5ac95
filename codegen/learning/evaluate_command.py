"""``edgesplit evaluate``: a trained policy against every baseline and the hindsight oracle on one recording.

In the virtual-time environment (``codegen/learning/environment.py``) by default, several seeds; with
``--real`` through real processes (a peer subprocess and one emulated device per strategy behind a
software link replaying the recording, as ``edgesplit demo`` runs them). The baselines are chosen
from the bundle's profiling set and the TRAINING recordings (``--train-link``), never from the
recording evaluated on (``codegen/learning/baselines.py``).
"""
import logging
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from edgesplit.policies_lite.provenance import recorded_bounds
from edgesplit.runtime.commands.number_flags import POSITIVE
from edgesplit.runtime.commands.output import print_json, print_table
from edgesplit.runtime.emulation.link.recording_readers import FORMATS
from edgesplit.runtime.emulation.scenario import DEMO
from edgesplit.runtime.errors import InputError

log = logging.getLogger(__name__)

REAL_BATCH = 6  # strategies run at once through real processes (each its own device and link)
DEFAULT_SEEDS = 3


def register(commands) -> None:
    parser = commands.add_parser(
        "evaluate",
        description="Runs a trained policy (--policy), the planner policy, EdgeML's ablations of the policy "
                    "(T1, TL, NonBranch), local-only, remote-only, Neurosurgeon, a single threshold, MOEA "
                    "(NSGA-III) and a hindsight oracle (an upper bound, not deployable) on the same bandwidth "
                    "recording, in the virtual-time environment (several seeds) or, with --real, through real "
                    "processes; prints one row per strategy. Baselines are chosen from the bundle's profiling "
                    "set and the --train-link recordings only. For the default bundle every unset flag takes the "
                    "demo's value.")
    parser.add_argument("--bundle", default="default", help="bundle directory ('default': the embedded MNIST one)")
    parser.add_argument("--board", metavar="NAME", help="the EMULATED board (a name from 'edgesplit board list'); "
                        "required for a bundle other than the default (whose default is the demo's %s)"
                        % DEMO["board"])
    parser.add_argument("--workload-scale", type=float, metavar="K",
                        help="segment time multiplier (default: 1; the demo's %g for the default bundle)"
                             % DEMO["workload_scale"])
    parser.add_argument("--measured-profile", metavar="NAME",
                        help="time segments from BUNDLE/profiles/NAME.json instead of the board's MACs model")
    parser.add_argument("--link", required=True, metavar="TRACE",
                        help="the bandwidth recording to evaluate on (a file in any supported format, or a shipped "
                             "name)")
    parser.add_argument("--link-format", default="auto", choices=FORMATS,
                        help="format of --link and --train-link files (default: detected)")
    parser.add_argument("--link-scale", type=float, metavar="F",
                        help="multiply the recordings' rates (default 1; the demo's %.4f for the default bundle)"
                             % DEMO["link_scale"])
    parser.add_argument("--link-mean-mbps", type=float, metavar="M",
                        help="instead of --link-scale: scale each recording (the evaluated one and every training "
                             "one) so that its mean rate is M Mbit/s, to compare recordings of different networks "
                             "in one rate range")
    parser.add_argument("--recording-speed", type=float,
                        help="recorded seconds per emulated second (default 1; the demo's %g for the default "
                             "bundle)" % DEMO["recording_speed"])
    parser.add_argument("--period-ms", type=float, default=1e3 * DEMO["period_s"],
                        help="one task arrives every this many ms (default %(default)g, the demo's)")
    parser.add_argument("--rtt-ms", type=float, default=1e3 * DEMO["rtt_s"], help="the link's base RTT "
                        "(default %(default)g)")
    parser.add_argument("--policy", required=True, metavar="P.npz", help="the trained policy to evaluate (its row "
                        "says 'policy'); the word demo names the shipped demo policy")
    parser.add_argument("--planner-policy", metavar="P.npz",
                        help="the planner-built policy to compare with (default: the shipped demo policy for the "
                             "default bundle, none for another bundle)")
    parser.add_argument("--train-link", action="append", metavar="TRACE",
                        help="a recording the baselines may be chosen on (repeat for several; default: every "
                             "shipped recording except --link). Never the evaluated one")
    parser.add_argument("--latency-bound-ms", type=float,
                        help="default: the demo's %g for the default bundle, else the board config's [bounds]"
                             % (1e3 * DEMO["latency_bound_s"]))
    parser.add_argument("--energy-bound", type=float, help="energy bound per task in mJ (default: the demo's %g "
                        "for the default bundle, none for another bundle)" % DEMO["energy_bound_mj"])
    parser.add_argument("--no-energy-bound", action="store_true", help="judge by the latency bound alone")
    parser.add_argument("--images", help=".npy profiling images (required for a bundle other than the default); "
                                         "with --real also the inputs run")
    parser.add_argument("--labels", help=".npy labels for --images")
    parser.add_argument("--tasks", type=int, default=500, help="tasks per run (default %(default)s)")
    parser.add_argument("--seeds", type=int, default=DEFAULT_SEEDS,
                        help="runs per strategy, seeds --seed, --seed + 1, ... (default %(default)s): in the "
                             "environment the seed draws the inputs, with --real it shuffles their order")
    parser.add_argument("--seed", type=int, default=0, help="the first seed (default 0); also MOEA's search seed")
    parser.add_argument("--no-oracle", action="store_true", help="skip the hindsight oracle (the slowest row)")
    parser.add_argument("--real", action="store_true",
                        help="run the strategies through real processes (peer subprocess, emulated devices, "
                             "software link) instead of the environment; the oracle needs the environment and is "
                             "left out")
    parser.add_argument("--speedup", type=float, default=None,
                        help="with --real: emulated seconds per real second (default 1); the environment runs in "
                             "virtual time and refuses it")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--no-progress", action="store_true", help="print no progress lines (stderr)")
    parser.set_defaults(handler=run, number_flag_ranges={"--period-ms": POSITIVE})


class Progress:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.started = time.monotonic()

    def say(self, message: str) -> None:
        if self.enabled:
            print("evaluate: %s (%.0f s)" % (message, time.monotonic() - self.started), file=sys.stderr, flush=True)


def _positive(value: Optional[float], flag: str) -> None:
    if value is not None and not (value > 0 and math.isfinite(value)):
        raise InputError("%s must be a positive number, got %r" % (flag, value))


def _check_args(args) -> None:
    for value, flag in ((args.workload_scale, "--workload-scale"), (args.link_scale, "--link-scale"),
                        (args.recording_speed, "--recording-speed"), (args.latency_bound_ms, "--latency-bound-ms"),
                        (args.energy_bound, "--energy-bound"), (args.speedup, "--speedup")):
        _positive(value, flag)
    if args.rtt_ms is not None and not (args.rtt_ms >= 0 and math.isfinite(args.rtt_ms)):
        raise InputError("--rtt-ms must be zero or positive, got %r" % args.rtt_ms)
    if args.tasks < 1:
        raise InputError("--tasks must be at least 1, got %d" % args.tasks)
    if args.seeds < 1:
        raise InputError("--seeds must be at least 1, got %d" % args.seeds)
    _positive(args.link_mean_mbps, "--link-mean-mbps")
    if args.link_mean_mbps is not None and args.link_scale is not None:
        raise InputError("give either --link-scale or --link-mean-mbps, not both")
    if args.energy_bound is not None and args.no_energy_bound:
        raise InputError("give either --energy-bound or --no-energy-bound, not both")
    if (args.images is None) != (args.labels is None):
        raise InputError("--images and --labels go together (one label per image)")
    if args.speedup is not None and not args.real:
        raise InputError("--speedup is for --real (real processes paced to the emulated board); the environment runs "
                         "in virtual time: drop --speedup or add --real")
    from edgesplit.runtime.shipped_policy import resolve_policy_path

    args.policy = str(resolve_policy_path(args.policy))  # "demo": the shipped policy, as everywhere a policy is taken
    if not Path(args.policy).is_file():
        raise InputError("--policy %s: no such file (a frozen policy .npz, e.g. from 'edgesplit train', or demo)"
                         % args.policy)


def _recording_path(name: str, flag: str) -> Path:
    from edgesplit.runtime.emulation.link.recording_readers import RecordingError
    from edgesplit.runtime.emulation.link.shipped import resolve_recording

    try:
        return resolve_recording(name)
    except RecordingError as exc:
        raise InputError("%s %s: %s" % (flag, name, exc)) from None


def _read_rates(path: Path, fmt: str, scale: float, mean_mbps: Optional[float] = None) -> np.ndarray:
    """The recording's rates x ``scale``, or scaled to a mean of ``mean_mbps`` when that is given."""
    from edgesplit.runtime.emulation.link.recording_readers import RecordingError, read_recording

    try:
        rates = np.asarray(read_recording(path, fmt).bps, dtype=float)
    except RecordingError as exc:
        raise InputError(str(exc)) from None
    if mean_mbps is not None:
        if not rates.mean() > 0:
            raise InputError("%s: the recording's mean rate is 0, it cannot be scaled to --link-mean-mbps" % path)
        return rates * (mean_mbps * 1e6 / rates.mean())
    return rates * scale


def _train_links(args, evaluated: Path) -> List[Path]:
    from edgesplit.runtime.emulation.link.shipped import shipped_recordings

    if args.train_link:
        paths = [_recording_path(t, "--train-link") for t in args.train_link]
    else:
        paths = [p for p in shipped_recordings().values() if p.resolve() != evaluated.resolve()]
        if not paths:
            raise InputError("no shipped recording is left to choose the baselines on once --link %s is held out: "
                             "give --train-link" % args.link)
    for p in paths:
        if p.resolve() == evaluated.resolve():
            raise InputError("--train-link %s is the recording evaluated on (--link): the baselines must be chosen "
                             "on other recordings" % p)
    return paths


def build_scenario(args):
    """The environment's scenario from the flags: the demo's values for the default bundle where unset."""
    from edgesplit.codegen.learning.environment import Scenario
    from edgesplit.runtime.default_bundle import DEFAULT_BUNDLE, default_bundle_path

    default = args.bundle == DEFAULT_BUNDLE
    bundle_dir = default_bundle_path() if default else Path(args.bundle)
    if not default and not (bundle_dir / "manifest.json").is_file():
        raise InputError("--bundle %s: no manifest.json there (a bundle directory from 'edgesplit split' or "
                         "'add-exits', or 'default')" % args.bundle)
    if not default and not args.board:
        raise InputError("--board NAME is needed to emulate bundle %s (see 'edgesplit board list')" % args.bundle)
    if not default and args.images is None:
        raise InputError("bundle %s needs its profiling set: --images and --labels (.npy)" % args.bundle)
    board = args.board or DEMO["board"]
    from edgesplit.runtime.boards.config import BoardConfigError, load_named_board
    from edgesplit.runtime.emulation.board import EmulationError, load_emulated_board

    try:
        load_emulated_board(board)
    except (EmulationError, BoardConfigError) as exc:
        raise InputError("--board %s: %s" % (board, exc)) from None
    if args.latency_bound_ms is not None:
        latency_s = args.latency_bound_ms / 1e3
    elif default:
        latency_s = DEMO["latency_bound_s"]
    else:
        latency_s = load_named_board(board).bounds.latency_ms / 1e3
    if args.no_energy_bound:
        energy = None
    elif args.energy_bound is not None:
        energy = args.energy_bound
    else:
        energy = DEMO["energy_bound_mj"] if default else None
    evaluated = _recording_path(args.link, "--link")
    if args.link_mean_mbps is not None:
        scaled = _read_rates(evaluated, args.link_format, 1.0, args.link_mean_mbps)  # refuses a mean of 0
        link_scale = float(scaled.mean() / _read_rates(evaluated, args.link_format, 1.0).mean())
    elif args.link_scale is not None:
        link_scale = args.link_scale
    else:
        link_scale = DEMO["link_scale"] if default else 1.0
        _read_rates(evaluated, args.link_format, 1.0)  # a recording that cannot be read fails here, naming it
    return Scenario(bundle_dir=bundle_dir, board=board, recordings=[evaluated],
                    link_scale=link_scale,
                    link_format=None if args.link_format == "auto" else args.link_format,
                    rtt_s=args.rtt_ms / 1e3,
                    workload_scale=args.workload_scale if args.workload_scale is not None else
                    (DEMO["workload_scale"] if default else 1.0),
                    measured_profile=args.measured_profile, latency_bound_s=latency_s, energy_bound=energy,
                    period_s=args.period_ms / 1e3, episode_tasks=args.tasks,
                    images=Path(args.images) if args.images else None,
                    labels=Path(args.labels) if args.labels else None,
                    recording_speed=args.recording_speed if args.recording_speed is not None else
                    (DEMO["recording_speed"] if default else 1.0))


def scenario_differences(provenance: Dict[str, Any], scenario, bundle_hash,
                         link_mean_mbps: Optional[float] = None) -> List[str]:
    """Where this evaluation's scenario differs from the one the policy records it was trained in (a policy is only
    as good as its training scenario: evaluated in another, its row says little). Keys it does not record are
    skipped; each difference is one phrase. Provenance is free-form JSON: a value of another type than expected is
    compared and shown as it is, never a crash. ``bundle_hash``: the bundle's hash, or the hashes it answers to (its
    own and, for a converted bundle, its source's: ``Bundle.wire_hash``), the first shown."""
    hashes = (bundle_hash,) if isinstance(bundle_hash, str) else tuple(bundle_hash)
    def number(value) -> Optional[float]:
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    def differs(trained, evaluated) -> bool:
        if trained is None:
            return False
        a, b = number(trained), number(evaluated)
        if a is not None and b is not None:
            return abs(a - b) > 1e-6 * max(1.0, abs(b))
        return trained != evaluated

    def shown(value, fmt: str, scale: float = 1.0) -> str:
        v = number(value)
        return fmt % (scale * v) if v is not None else "%r" % (value,)

    found = []
    trained_hash = provenance.get("bundle_sha256")
    if trained_hash is not None and trained_hash not in hashes:
        found.append("trained with bundle %s, evaluated with bundle %s" % (str(trained_hash)[:12], hashes[0][:12]))
    checks = [("board", scenario.board, "board %s", str),
              ("workload_scale", scenario.workload_scale, "workload x%s", lambda v: shown(v, "%g")),
              ("recording_speed", scenario.recording_speed, "recording speed %s", lambda v: shown(v, "%g")),
              ("period_s", scenario.period_s, "one task per %s ms (--period-ms)", lambda v: shown(v, "%g", 1e3))]
    for key, evaluated, phrase, show in checks:
        trained = provenance.get(key)
        if differs(trained, evaluated):
            found.append(("trained with " + phrase + ", evaluated with " + phrase) % (show(trained), show(evaluated)))
    bounds = recorded_bounds(provenance)
    if differs(bounds.get("latency_s"), scenario.latency_bound_s):
        found.append("trained for a %s ms latency bound, evaluated at %s ms"
                     % (shown(bounds["latency_s"], "%g", 1e3), shown(scenario.latency_bound_s, "%g", 1e3)))
    if "energy" in bounds:
        trained, evaluated = bounds["energy"], scenario.energy_bound
        if (trained is None) != (evaluated is None) or (trained is not None and differs(trained, evaluated)):
            found.append("trained for %s, evaluated with %s" % (
                "no energy bound" if trained is None else "a %s mJ energy bound" % shown(trained, "%g"),
                "no energy bound" if evaluated is None else "a %s mJ energy bound" % shown(evaluated, "%g")))
    trained_mean = provenance.get("link_mean_mbps")
    if trained_mean is not None and (link_mean_mbps is None or differs(trained_mean, link_mean_mbps)):
        found.append("trained on recordings scaled to a %s Mbit/s mean, evaluated %s" % (
            shown(trained_mean, "%g"),
            "with --link-scale" if link_mean_mbps is None else "at a %g Mbit/s mean" % link_mean_mbps))
    trained_scale = provenance.get("link_scale")  # the recordings' scale, where no mean was asked for instead
    if trained_mean is None and trained_scale is not None:
        if link_mean_mbps is not None:
            found.append("trained with --link-scale %s, evaluated at a %g Mbit/s mean (--link-mean-mbps)"
                         % (shown(trained_scale, "%g"), link_mean_mbps))
        elif differs(trained_scale, getattr(scenario, "link_scale", None)):
            found.append("trained with --link-scale %s, evaluated with --link-scale %s"
                         % (shown(trained_scale, "%g"), shown(scenario.link_scale, "%g")))
    return found


def _planner_path(args) -> Optional[str]:
    from edgesplit.runtime.default_bundle import DEFAULT_BUNDLE, DEMO_POLICY_FILE

    if args.planner_policy:
        from edgesplit.runtime.shipped_policy import resolve_policy_path

        args.planner_policy = str(resolve_policy_path(args.planner_policy))
        if not Path(args.planner_policy).is_file():
            raise InputError("--planner-policy %s: no such file" % args.planner_policy)
        return args.planner_policy
    return str(DEMO_POLICY_FILE) if args.bundle == DEFAULT_BUNDLE else None


def run(args) -> int:
    from edgesplit.codegen.learning.baselines import Profiling
    from edgesplit.codegen.learning.environment import Environment
    from edgesplit.codegen.learning.evaluate import (evaluate_in_environment, lineup, load_policy_for, paired_verdict,
                                                      seed_verdicts, verdict)
    from edgesplit.runtime.controller.state import FEATURES
    started = time.monotonic()
    _check_args(args)
    progress = Progress(not args.no_progress)
    scenario = build_scenario(args)
    evaluated = Path(scenario.recordings[0])
    train = _train_links(args, evaluated)
    train_rates = np.concatenate([_read_rates(p, args.link_format, scenario.link_scale, args.link_mean_mbps)
                                  for p in train])
    progress.say("profiling the bundle's exits on its profiling set and building the environment")
    try:
        env = Environment(scenario, seed=args.seed)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    static = env.static
    manifest = static.bundle.manifest
    profiling = Profiling(static.stats, static.cost, env.bounds, train_rates,
                          tuple(e.threshold for e in manifest.exits if e.head is not None))
    features = FEATURES if args.real else env.features
    policy = load_policy_for(args.policy, features, env.n_exits, env.n_cuts, "policy")
    differences = scenario_differences(dict(policy.policy.provenance), scenario,
                                       (env.static.bundle.hash, env.static.bundle.wire_hash), args.link_mean_mbps)
    for difference in differences:
        log.warning("--policy %s: %s: evaluate it with the settings it was trained with (edgesplit policy show %s "
                    "lists them)", args.policy, difference, args.policy)
    planner_path = _planner_path(args)
    planner = load_policy_for(planner_path, features, env.n_exits, env.n_cuts, "planner") if planner_path else None
    progress.say("choosing the baselines on %d training recording(s) (MOEA: NSGA-III)" % len(train))
    chosen = lineup(profiling, policy, planner, moea_seed=args.seed)
    seeds = list(range(args.seed, args.seed + args.seeds))
    if args.real:
        rows = evaluate_real(args, scenario, chosen.strategies, seeds, progress)
    else:
        rows = evaluate_in_environment(env, chosen, seeds, oracle=not args.no_oracle, progress=progress.say)
    report = {
        "mode": "real" if args.real else "environment",
        "scenario": {"bundle": str(scenario.bundle_dir), "board": scenario.board, "emulated": True,
                     "workload_scale": scenario.workload_scale, "link": str(evaluated),
                     "link_scale": scenario.link_scale, "link_mean_mbps": args.link_mean_mbps,
                     "recording_speed": scenario.recording_speed,
                     "rtt_ms": 1e3 * scenario.rtt_s, "latency_bound_ms": 1e3 * scenario.latency_bound_s,
                     "energy_bound_mj": scenario.energy_bound, "period_ms": 1e3 * scenario.period_s,
                     "tasks": scenario.episode_tasks},
        "train_links": [str(p) for p in train],
        "policy": args.policy, "planner_policy": planner_path, "seeds": seeds,
        "results": rows, "verdict": verdict(rows), "verdict_per_seed": seed_verdicts(rows),
        "verdict_paired": paired_verdict(rows),
        "scenario_differences": differences,
        "wall_s": round(time.monotonic() - started, 1)}
    if not args.real:
        from edgesplit.codegen.learning import environment

        report["environment_version"] = getattr(environment, "ENVIRONMENT_VERSION", None)
    if args.json:
        print_json(report)
        return 0
    _print_report(report)
    return 0


def evaluate_real(args, scenario, strategies, seeds: List[int], progress: Progress) -> List[Dict[str, Any]]:
    """Every strategy through real processes, ``REAL_BATCH`` at a time, once per seed (the seed shuffles the inputs)."""
    from edgesplit.codegen.learning.evaluate import aggregate
    from edgesplit.runtime.bundle.store import load_bundle
    from edgesplit.runtime.commands.output import Progress as StrategyProgress
    from edgesplit.runtime.emulation.side_by_side import run_strategies
    from edgesplit.runtime.controller.reward import Bounds
    from edgesplit.runtime.default_bundle import load_heldout
    from edgesplit.runtime.device.pipeline import LinkSetup
    from edgesplit.runtime.emulation.board import load_emulated_board
    from edgesplit.runtime.emulation.link.recording_readers import read_recording
    from edgesplit.runtime.emulation.pacing import Emulation
    from edgesplit.runtime.profiling.store import load_profile
    from edgesplit.runtime.traces import TraceStore

    if not getattr(args, "verbose", 0):
        # Peer up/down events show in the fallbacks column; one log line each would bury the table.
        logging.getLogger("edgesplit.runtime.transport").setLevel(logging.ERROR)
    bundle = load_bundle(str(scenario.bundle_dir))
    if scenario.images is not None:
        from edgesplit.runtime.inputs import read_npy

        images, labels = read_npy(str(scenario.images), "--images"), read_npy(str(scenario.labels), "--labels")
    else:
        images, labels = load_heldout()  # the demo's inputs: never in the profiling set
    measured = load_profile(bundle, scenario.measured_profile) if scenario.measured_profile else None
    emulation = Emulation(load_emulated_board(scenario.board), workload_scale=scenario.workload_scale,
                          speedup=args.speedup or 1.0, measured=measured)
    recording = read_recording(Path(scenario.recordings[0]), args.link_format)
    link = LinkSetup(recording, rtt_s=scenario.rtt_s, recording_speed=scenario.recording_speed,
                     link_scale=scenario.link_scale, name=Path(scenario.recordings[0]).name)
    bounds = Bounds(scenario.latency_bound_s, math.inf if scenario.energy_bound is None else scenario.energy_bound)
    traces = Path(tempfile.mkdtemp(prefix="edgesplit-evaluate-")) / "evaluate_traces.db"
    per_strategy = {s.name: [] for s in strategies}  # type: Dict[str, List[Dict[str, Any]]]
    store = TraceStore(str(traces), batch_size=64, flush_interval_s=1.0)
    try:
        for seed in seeds:
            order = np.random.RandomState(seed).permutation(len(labels))[:scenario.episode_tasks]
            for start in range(0, len(strategies), REAL_BATCH):
                batch = strategies[start:start + REAL_BATCH]
                progress.say("seed %d: %s through real processes" % (seed, ", ".join(s.name for s in batch)))
                rows, _, _ = run_strategies(str(scenario.bundle_dir), bundle, batch, images[order], labels[order],
                                            link, bounds, emulation, scenario.period_s, store,
                                            StrategyProgress(progress.enabled, "evaluate"),
                                            run_config={"command": "evaluate --real", "seed": seed})
                for strategy, row in zip(batch, rows):
                    per_strategy[strategy.name].append(
                        {"sr": row["sr"], "accuracy": row["accuracy"], "mean_latency_ms": row["mean_latency_ms"],
                         "reward": row["reward"], "fallbacks": row["fallbacks"], "tasks": row["tasks"]})
    finally:
        store.close()
    return [aggregate(s.name, per_strategy[s.name], seeds, description=s.describe(), traces=str(traces))
            for s in strategies]


def _pm(mean: Optional[float], std: Optional[float], scale: float, fmt: str) -> str:
    if mean is None:
        return "-"
    text = fmt % (scale * mean)
    return text + (" ±" + fmt % (scale * std) if std else "")


def _print_report(report: Dict[str, Any]) -> None:
    from edgesplit.codegen.learning.evaluate import paired_verdict_line, seed_verdict_line, verdict_lines

    sc = report["scenario"]
    print("%s: EMULATED %s (x%g workload), recording %s x%.4g, bounds %g ms and %s mJ, %d tasks, seeds %s"
          % ("real processes" if report["mode"] == "real" else "virtual-time environment", sc["board"],
             sc["workload_scale"], Path(sc["link"]).name, sc["link_scale"], sc["latency_bound_ms"],
             "no" if sc["energy_bound_mj"] is None else "%g" % sc["energy_bound_mj"], sc["tasks"],
             ",".join(str(s) for s in report["seeds"])))
    print("baselines chosen on: %s" % ", ".join(Path(p).name for p in report["train_links"]))
    print_table(("strategy", "SR %", "accuracy %", "mean ms", "reward", "fallbacks"), [
        (r["strategy"] + (" (upper bound)" if r.get("upper_bound") else ""),
         _pm(r["sr"], r["sr_std"], 100, "%.1f"), _pm(r["accuracy"], r["accuracy_std"], 100, "%.1f"),
         _pm(r["mean_latency_ms"], r["mean_latency_ms_std"], 1, "%.1f"), _pm(r["reward"], r["reward_std"], 1, "%.3f"),
         "%.1f" % r["fallbacks"] if r["fallbacks"] is not None else "-")
        for r in report["results"]])
    for line in verdict_lines(report["verdict"]):
        print(line)
    if len(report["verdict_per_seed"]) > 1:
        print(seed_verdict_line(report["verdict_per_seed"]))
    if report.get("verdict_paired"):
        print(paired_verdict_line(report["verdict_paired"]))
    traces = sorted({r["traces"] for r in report["results"] if r.get("traces")})
    if traces:  # --real: every task of every strategy, kept for a look (edgesplit traces summary); delete at will
        print("traces of the real runs: %s" % ", ".join(traces))
