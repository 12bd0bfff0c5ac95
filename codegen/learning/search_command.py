"""``edgesplit train --algo search``: policy search (``codegen/learning/search.py``) from the train command.

The training recordings (``--link-traces``) are split into the ones the search scores candidates on and
VALIDATION ones it only uses to pick among its finalists (``--validation-traces``, default: every fourth
of the training recordings, in the order given). Each recording can be scaled to one mean rate
(``--link-mean-mbps``) and replayed faster (``--recording-speed``), as ``evaluate`` does. The frozen
policy is written with policies_lite (an MLP with the ``edgeml`` decoder) with its provenance, then run
on every validation recording and reported.
"""
import logging
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

from edgesplit.runtime.commands.output import print_json
from edgesplit.runtime.errors import InputError

log = logging.getLogger(__name__)

VALIDATION_EVERY = 4  # by default every fourth training recording is a validation recording
SEARCH_ONLY_FLAGS = (("generations", "--generations"), ("population", "--population"),
                     ("validation_traces", "--validation-traces"), ("link_mean_mbps", "--link-mean-mbps"),
                     ("recording_speed", "--recording-speed"), ("accuracy_allowance", "--accuracy-allowance"),
                     ("accuracy_margin", "--accuracy-margin"), ("local_sr_weight", "--local-sr-weight"),
                     ("no_per_action_floor", "--no-per-action-floor"), ("no_ablation_sr_term", "--no-ablation-sr-term"),
                     ("tied_thresholds", "--tied-thresholds"), ("memory", "--memory"), ("fast_remote", "--fast-remote"),
                     ("fast_steps", "--fast-steps"),
                     ("hysteresis", "--hysteresis"), ("start", "--start"),
                     ("rival_term", "--rival-term"), ("rival_floor", "--rival-floor"),
                     ("episode_floor", "--episode-floor"), ("ablation_rivals", "--ablation-rivals"))
# (flag, Args field): accuracy figures, given in points on the command line and stored as fractions
POINTS_FLAGS = (("--accuracy-allowance", "accuracy_allowance"), ("--accuracy-margin", "accuracy_margin"))


def add_arguments(parser) -> None:
    """The flags only ``--algo search`` takes (the rest are train's)."""
    parser.add_argument("--generations", type=int, metavar="N",
                        help="search: rounds of the cross-entropy method (default %d)" % _defaults().generations)
    parser.add_argument("--population", type=int, metavar="N",
                        help="search: candidates per round (default %d)" % _defaults().population)
    parser.add_argument("--validation-traces", nargs="+", metavar="T",
                        help="search: recordings that pick among the finalists and are never scored during the "
                             "search (default: every fourth of --link-traces, which then leaves the search)")
    parser.add_argument("--link-mean-mbps", type=float, metavar="M",
                        help="search: scale every recording to this mean rate instead of --link-scale")
    parser.add_argument("--recording-speed", type=float, metavar="X",
                        help="search: recorded seconds per emulated second (default 1; the demo replays at 2)")
    defaults = _defaults()
    parser.add_argument("--accuracy-allowance", type=float, metavar="POINTS",
                        help="search: accuracy points the policy may give up against the most accurate reference "
                             "(default %g, evaluate's allowance)" % (100 * defaults.accuracy_allowance))
    parser.add_argument("--accuracy-margin", type=float, metavar="POINTS",
                        help="search: points kept in hand against the allowance (default %g): the floor is "
                             "allowance - margin below the reference" % (100 * defaults.accuracy_margin))
    parser.add_argument("--local-sr-weight", type=float, metavar="W",
                        help="search: weight in [0, 1] of the local action's own SR in the score (default %g; 0: "
                             "the policy's SR alone)" % defaults.local_sr_weight)
    parser.add_argument("--no-per-action-floor", action="store_true", default=None,
                        help="search: hold only the policy's mix of actions to the accuracy floor, not its local "
                             "action alone (also drops the local action's SR from the score)")
    parser.add_argument("--no-ablation-sr-term", action="store_true", default=None,
                        help="search: do not charge the policy the SR lead of its own T1/TL ablations")
    parser.add_argument("--tied-thresholds", action="store_true", default=None,
                        help="search: one exit threshold per action, the same at every exit (its T1/TL ablations are "
                             "then the policy itself)")
    parser.add_argument("--start", choices=("local-only", "moea"),
                        help="search: the local action it starts from (and pairs with generation 0's gate seeds): "
                             "local-only with the bundle's thresholds (the default), or MOEA's static action chosen "
                             "on the training recordings as evaluate chooses its MOEA baseline (NSGA-III), at the "
                             "last cut")
    parser.add_argument("--rival-term", action="store_true", default=None,
                        help="search: charge the policy, episode by episode, the SR points by which the best of "
                             "evaluate's baselines within the accuracy allowance (local-only, remote-only, Neurosurgeon, "
                             "one threshold, MOEA, the shipped planner policy) beats it")
    parser.add_argument("--rival-floor", action="store_true", default=None,
                        help="search: the accuracy floor follows the most accurate of those baselines too (evaluate "
                             "counts its allowance from its most accurate baseline, whichever it is), not only "
                             "local-only's and remote-only's")
    parser.add_argument("--episode-floor", action="store_true", default=None,
                        help="search: hold the accuracy floor on each episode too (the most accurate of those "
                             "baselines there, less the allowance plus the margin), not only over every task pooled: "
                             "evaluate counts its allowance recording by recording")
    parser.add_argument("--ablation-rivals", action="store_true", default=None,
                        help="search, with --rival-term: the policy's own T1, TL and NonBranch ablations are rivals too, "
                             "episode by episode (their SR lead and, with --episode-floor, their accuracy), instead of "
                             "their lead over every task pooled: evaluate ranks them beside its baselines")
    parser.add_argument("--hysteresis", action="store_true", default=None,
                        help="search: the gate opens at the gate less a searched hysteresis (Mbit/s) times the "
                             "state's remote_share, so after a remote stretch a dip of the estimate does not shut it; "
                             "the policy then needs a board that supplies remote_share")
    parser.add_argument("--memory", action="store_true", default=None,
                        help="search: a third, fast local action (one threshold) taken while the gate is shut and "
                             "the state's remote_share (the share of the last 50 tasks run at cut 0) is at least a "
                             "searched share gate; the policy then needs a board that supplies remote_share")
    parser.add_argument("--fast-remote", action="store_true", default=None,
                        help="search, with --memory: a fast remote action too (one threshold for every exit, at the "
                             "remote action's cut) taken instead of the remote action while the gate is open and "
                             "remote_share is at least the share gate: on a link that keeps most tasks remote, the "
                             "remote tasks may spend accuracy on earlier exits")
    parser.add_argument("--fast-steps", type=int, metavar="K",
                        help="search, with --memory: grade the fast local action in K equal steps (1 to %d; default "
                             "1, all at once): the k-th is taken from remote_share >= k/K of the share gate and moves "
                             "the local thresholds a K-th of the way to the fast threshold (no more genes)"
                             % _max_fast_steps())


def _max_fast_steps() -> int:
    from edgesplit.codegen.learning.search import MAX_FAST_STEPS

    return MAX_FAST_STEPS


def _defaults():
    from edgesplit.codegen.learning.search import Args

    return Args()


def check_flags(args) -> None:
    """Refuse search-only flags under another algorithm, and flags search does not take, by name."""
    if args.algo != "search":
        given = [flag for name, flag in SEARCH_ONLY_FLAGS if getattr(args, name, None) is not None]
        if given:
            why = (" (--algo %s trains on --link-traces x --link-scale)" % args.algo
                   if args.link_mean_mbps is not None or args.recording_speed is not None else "")
            raise InputError("%s: only for --algo search%s" % (", ".join(given), why))
        return
    if getattr(args, "candidates", 1) > 1:
        raise InputError("--candidates %d: --algo search trains one policy (its own search keeps the best)"
                         % args.candidates)
    for flag, value in (("--write-traces", args.write_traces), ("--epochs", args.epochs)):
        if value:
            raise InputError("%s: not taken by --algo search (its budget is --generations x --population "
                             "candidates, scored in the environment)" % flag)
    for flag, value, least in (("--generations", args.generations, 1), ("--population", args.population, 2)):
        if value is not None and value < least:
            raise InputError("%s must be >= %d, got %d" % (flag, least, value))
    for flag, field in POINTS_FLAGS:
        value = getattr(args, field)
        if value is not None and not (np.isfinite(value) and 0.0 <= value <= 20.0):
            raise InputError("%s must be between 0 and 20 accuracy points, got %r" % (flag, value))
    allowance = args.accuracy_allowance if args.accuracy_allowance is not None else 100 * _defaults().accuracy_allowance
    margin = args.accuracy_margin if args.accuracy_margin is not None else 100 * _defaults().accuracy_margin
    if margin > allowance:
        raise InputError("--accuracy-margin %g is more than the allowance %g: the floor would be above the reference"
                         % (margin, allowance))
    weight = args.local_sr_weight
    if weight is not None and not (np.isfinite(weight) and 0.0 <= weight <= 1.0):
        raise InputError("--local-sr-weight must be between 0 and 1, got %r" % weight)
    if weight and args.no_per_action_floor:
        raise InputError("--local-sr-weight needs the local action's own run, which --no-per-action-floor drops")
    if args.fast_remote and not args.memory:
        raise InputError("--fast-remote needs --memory: the fast remote action follows the memory's share gate")
    if args.ablation_rivals and not args.rival_term:
        raise InputError("--ablation-rivals needs --rival-term: the ablations join the rivals whose lead it charges")
    if args.fast_steps is not None:
        if not 1 <= args.fast_steps <= _max_fast_steps():
            raise InputError("--fast-steps must be between 1 and %d, got %d" % (_max_fast_steps(), args.fast_steps))
        if args.fast_steps > 1 and not args.memory:
            raise InputError("--fast-steps %d needs --memory: the steps grade the memory's fast action"
                             % args.fast_steps)
    if args.link_mean_mbps is not None and args.link_scale != 1.0:
        raise InputError("--link-mean-mbps and --link-scale both scale the recordings: give one")


def split_recordings(link_traces: Sequence[str], validation_traces: Sequence[str]) -> Tuple[List[Path], List[Path]]:
    """(scored, validation) recording paths; a recording in both lists is refused by name."""
    from edgesplit.runtime.emulation.link.shipped import resolve_recording

    paths = [Path(resolve_recording(name)) for name in link_traces]
    twice = sorted({str(p) for p in paths if paths.count(p) > 1})
    if twice:
        raise InputError("--link-traces names %s more than once: give each recording once (every fourth of them "
                         "validates, the rest are searched)" % ", ".join(twice))
    if validation_traces:
        validation = [Path(resolve_recording(name)) for name in validation_traces]
        both = sorted({str(p) for p in paths} & {str(p) for p in validation})
        if both:
            raise InputError("--validation-traces %s: also in --link-traces; a validation recording is one the "
                             "search never scores" % ", ".join(both))
        return paths, validation
    if len(paths) < 2:
        raise InputError("--algo search needs at least 2 --link-traces (one in %d validates), or "
                         "--validation-traces" % VALIDATION_EVERY)
    validation = [p for i, p in enumerate(paths) if i % VALIDATION_EVERY == VALIDATION_EVERY - 1]
    if not validation:
        validation = paths[-1:]
    return [p for p in paths if p not in validation], validation


def _recording(path: Path, args):
    """The recording in memory, scaled to --link-mean-mbps when given (else left to the scenario's link scale)."""
    from edgesplit.codegen.learning.environment import Recording
    from edgesplit.runtime.emulation.link.recording_readers import RecordingError, read_recording

    try:
        recording = read_recording(path)
    except RecordingError as exc:
        raise InputError(str(exc)) from None
    rates = np.asarray(recording.bps, dtype=float)
    if args.link_mean_mbps is not None:
        if not rates.mean() > 0:
            raise InputError("%s: the recording's mean rate is 0, it cannot be scaled to --link-mean-mbps" % path)
        rates = rates * (args.link_mean_mbps * 1e6 / rates.mean())
    return Recording(str(path), recording.step_s, rates)


def _scenario(args, bundle, paths: Sequence[Path], episode_tasks: int):
    from edgesplit.codegen.learning.train_command import _scenario as train_scenario

    scenario = train_scenario(args, bundle)  # the board, bounds and profiling set, checked as for ddpg
    scenario.recordings = [_recording(p, args) for p in paths]
    scenario.episode_tasks = episode_tasks
    scenario.recording_speed = args.recording_speed if args.recording_speed is not None else 1.0
    return scenario


def provenance(args, bundle, fit: Sequence[Path], validation: Sequence[Path], params, result,
               reference) -> Dict[str, Any]:
    from edgesplit.codegen.learning import environment
    from edgesplit.codegen.learning.search import ALGORITHM, hyperparameters
    from edgesplit.codegen.learning.train_command import ENERGY_UNIT
    from edgesplit.runtime.bundle.manifest import file_sha256

    recordings = ([{"path": str(p), "sha256": file_sha256(str(p)), "role": "search"} for p in fit]
                  + [{"path": str(p), "sha256": file_sha256(str(p)), "role": "validation"} for p in validation])
    return {
        "algorithm": ALGORITHM, "traces": [str(p) for p in list(fit) + list(validation)], "recordings": recordings,
        "seeds": [params.seed], "seed": params.seed, "hyperparameters": hyperparameters(params),
        "environment_version": getattr(environment, "ENVIRONMENT_VERSION", "unknown"),
        "bundle": bundle.manifest.name, "bundle_sha256": bundle.hash, "bundle_path": str(bundle.root),
        "board": args.board, "board_emulated": True, "workload_scale": args.workload_scale,
        "measured_profile": args.measured_profile, "link_scale": args.link_scale,
        "link_mean_mbps": args.link_mean_mbps, "recording_speed": args.recording_speed or 1.0,
        "rtt_s": args.rtt_ms / 1e3, "period_s": args.period_ms / 1e3,
        "bounds": {"latency_s": args.latency_bound_ms / 1e3, "energy": args.energy_bound},
        "energy_unit": ENERGY_UNIT, "energy_proxy": "emulated",
        "images": str(args.images) if args.images else "default bundle profiling set",
        "reference": [r.describe() for r in reference], "start": result.start.describe(),
        "train_score": result.train_score.to_dict(), "start_train_score": result.start_train_score.to_dict(),
        "validation": result.validation, "seeded": result.seeded,
        "training": {"generations": params.generations, "restarts": params.restarts, "evaluations": result.evaluations,
                     "seconds": round(result.seconds, 3)},
    }


def plot_generations(generations, out_png: Path, title: str) -> None:
    """The search's learning curve: per generation the best candidate's score, SR and accuracy, and the mean score."""
    from edgesplit.codegen.learning.train_command import curve_figure, save_curve

    fig, axes = curve_figure()
    restarts = sorted({g.restart for g in generations})
    for r in restarts:  # one line per restart (each its own run from the start), labelled only when there are several
        run = [g for g in generations if g.restart == r]
        x = [g.index for g in run]
        tag = " (restart %d)" % r if len(restarts) > 1 else ""
        style = dict(alpha=1.0 if r == 0 else 0.6)
        axes[0].plot(x, [g.best["value"] for g in run], marker="o", label="best score" + tag, color="tab:blue", **style)
        axes[0].plot(x, [g.mean_value for g in run], marker=".", label="population's mean score" + tag,
                     color="tab:gray", **style)
        axes[1].plot(x, [g.best["sr"] for g in run], marker="o", label="best's satisfaction rate" + tag,
                     color="tab:green", **style)
        axes[1].plot(x, [g.best["accuracy"] for g in run], marker="o", label="best's accuracy" + tag,
                     color="tab:orange", **style)
    axes[0].set_ylabel("score (SR - penalties)")
    axes[0].legend(loc="lower right", fontsize="small")
    axes[1].set_xlabel("generation (every candidate scored on that generation's episodes)")
    axes[1].legend(loc="lower right", fontsize="small")
    save_curve(fig, axes, title, out_png)


def profiling_of(env, local):
    """What evaluate's baselines are chosen from: the bundle's profiles and the search's own recordings' rates."""
    from edgesplit.codegen.learning.baselines import Profiling

    static = env.static
    rates = np.concatenate([np.asarray(r[1], dtype=float) for r in static.recordings])
    return Profiling(static.stats, static.cost, env.bounds, rates, tuple(local.action.thresholds))


def rivals_of(env, local, params, default_bundle: bool):
    """``evaluate``'s baselines, chosen on the search's recordings as evaluate chooses them on its training ones:
    the static ones (``baselines.static_baselines``, MOEA seeded with the search's seed) and, for the default bundle
    it was built for (as ``evaluate`` includes it), the shipped planner policy."""
    from edgesplit.codegen.learning.baselines import static_baselines
    from edgesplit.runtime.controller.strategies import load_policy_strategy
    from edgesplit.runtime.shipped_policy import DEMO_POLICY_FILE

    rivals = static_baselines(profiling_of(env, local), moea_seed=params.seed)
    if default_bundle:
        rivals.append(load_policy_strategy(DEMO_POLICY_FILE, env.n_exits, env.n_cuts, name="planner"))
    return rivals


def start_action(env, local, params, rivals=()):
    """The search's starting local action: ``local`` (local-only with the bundle's thresholds), or with ``params.start``
    "moea" the thresholds of MOEA's static action, chosen on the search's own recordings (``baselines.moea_action``:
    what ``evaluate`` runs as its MOEA baseline, chosen on the training recordings), at the last cut. A MOEA rival
    (``rivals_of``, the same NSGA-III with the same seed) is taken as it is rather than searched for again."""
    from edgesplit.codegen.learning.baselines import moea_action
    from edgesplit.runtime.controller.strategies import Action

    if params.start == "local-only":
        return local.action
    moea = [r for r in rivals if r.name == "moea"]
    chosen = moea[0].action if moea else moea_action(profiling_of(env, local), seed=params.seed).action
    log.info("search: starting from MOEA's thresholds %s (its cut %d; the local action runs at cut %d)",
             list(chosen.thresholds), chosen.cut, env.n_cuts - 1)
    return Action(tuple(chosen.thresholds), env.n_cuts - 1, 1, True)


def run(args) -> int:
    from tqdm import tqdm

    from edgesplit.codegen.learning.retraining import CandidateGuard, prepare_in_temporary_dir
    from edgesplit.codegen.policy_output import write_failed

    from edgesplit.codegen.learning.environment import Environment
    from edgesplit.codegen.learning.search import Args, search, starting_policy
    from edgesplit.codegen.learning.train_command import _check_args
    from edgesplit.runtime.controller.strategies import load_policy_strategy, local_only, remote_only
    from edgesplit.runtime.default_bundle import DEFAULT_BUNDLE, resolve_bundle

    out = _check_args(args)
    started = time.perf_counter()
    params = Args(seed=args.seed, episode_tasks=args.episode_tasks)
    if args.generations is not None:
        params.generations = args.generations
    if args.population is not None:
        params.population = args.population
        params.elite = max(1, min(params.elite, args.population // 4))
    for _, field in POINTS_FLAGS:
        if getattr(args, field) is not None:
            setattr(params, field, getattr(args, field) / 100.0)
    if args.local_sr_weight is not None:
        params.local_sr_weight = args.local_sr_weight
    if args.no_per_action_floor:
        params.per_action_floor = False
        params.local_sr_weight = 0.0  # its SR comes from the run the floor makes
    if args.no_ablation_sr_term:
        params.ablation_sr_term = False
    if args.tied_thresholds:
        params.tied_thresholds = True
    if args.memory:
        params.memory = True
    if args.fast_remote:
        params.fast_remote = True
    if args.fast_steps is not None:
        params.fast_steps = args.fast_steps
    if args.hysteresis:
        params.hysteresis = True
    if args.start:
        params.start = args.start
    if args.rival_term:
        params.rival_term = True
    if args.rival_floor:
        params.rival_floor = True
    if args.episode_floor:
        params.episode_floor = True
    if args.ablation_rivals:
        params.ablation_rivals = True
    params.restarts = getattr(args, "restarts", 1)
    bundle = resolve_bundle(args.bundle)
    fit, validation = split_recordings(args.link_traces, args.validation_traces or [])
    # --from-traces: the boards' timing and networks (their transitions are DDPG's: a search does not replay them),
    # and the guard against the policy they served (codegen/learning/retraining.py).
    plan, workdir = prepare_in_temporary_dir(args, _scenario(args, bundle, fit, params.episode_tasks), bundle)
    env = Environment(plan.training, seed=args.seed)
    validation_env = Environment(plan.apply(_scenario(args, bundle, validation, args.episode_tasks),
                                            add_networks=False), seed=args.seed, static=None)
    guard = CandidateGuard(args, plan, workdir, out)
    manifest = env.static.bundle.manifest
    local = local_only(env.n_exits, env.n_cuts - 1, [e.threshold for e in manifest.exits if e.head is not None])
    references = [local, remote_only(env.n_exits)]  # the accuracy floor follows the more accurate of the two
    rivals = (rivals_of(env, local, params, args.bundle == DEFAULT_BUNDLE) if params.rival_term or params.rival_floor
              or params.episode_floor else [])
    start = starting_policy(start_action(env, local, params, rivals), env.n_exits, params.gate_max_mbps)
    bar = tqdm(total=params.generations * params.restarts, desc="training search", unit="generation",
               disable=args.no_progress, leave=False, file=sys.stderr)

    def on_generation(generation):
        bar.update(1)
        bar.set_postfix(sr="%.3f" % generation.best["sr"], accuracy="%.3f" % generation.best["accuracy"])

    try:
        result = search(env, start, references, params, validation_env=validation_env, on_generation=on_generation,
                        rivals=rivals)
    finally:
        bar.close()
    candidate = guard.path(args.seed)
    try:
        policy_id = result.policy.export(candidate, env.n_exits, env.n_cuts, env.max_interval,
                                         dict(provenance(args, bundle, fit, validation, params, result, references),
                                              retraining=plan.report))
    except OSError as exc:  # --out itself without --from-traces: the disk filled up, the folder went away
        raise write_failed(candidate, exc) from None
    guard.add(args.seed, candidate, policy_id, result, params)
    if guard.choose()[3] is None:
        return guard.refuse(args)
    curve = out.with_name(out.stem + "_curve.png")
    try:
        plot_generations(result.generations, curve, "search on %s (emulated), seed %d: %s" % (
            args.board, args.seed, result.policy.describe()))
    except OSError as exc:
        raise write_failed(curve, exc, "the learning curve (the policy beside it is written)") from None
    frozen = load_policy_strategy(out, env.n_exits, env.n_cuts, name="policy")  # as run and serve load it
    evaluation = []
    for index, path in enumerate(validation):
        episode = validation_env.run(frozen, seed=args.seed, recording=index)
        evaluation.append({"recording": str(path), "role": "validation", "sr": episode.sr,
                           "accuracy": episode.accuracy, "mean_latency_ms": episode.mean_latency_ms,
                           "reward": episode.reward, "tasks": episode.tasks})
    summary = {"out": str(out), "policy_id": policy_id, "curve": str(curve), "algorithm": "search", "board": args.board,
               "bundle": str(bundle.root), "seed": args.seed, "policy": result.policy.describe(),
               "start": result.start.describe(), "train_score": result.train_score.to_dict(),
               "start_train_score": result.start_train_score.to_dict(),
               "reference": [r.describe() for r in references], "validation": result.validation,
               "seeded": result.seeded, "generations": [g.__dict__ for g in result.generations],
               "evaluations": result.evaluations, "train_seconds": round(result.seconds, 3),
               "seconds": round(time.perf_counter() - started, 3), "evaluation": evaluation}
    summary.update(guard.summary())
    if args.json:
        print_json(summary)
        return 0
    print("wrote %s (policy %s) and %s" % (out, policy_id[:12], curve))
    print("searched %d generations%s (%d candidates scored, generation 0's gate seeds and the finalists' validation "
          "included) in %.1f s; chosen: %s"
          % (params.generations, " x %d restarts (chosen from restart %d)" % (params.restarts, result.validation["restart"])
             if params.restarts > 1 else "", result.evaluations, result.seconds, result.policy.describe()))
    print("on the search's last episodes: SR %.3f accuracy %.3f (start: SR %.3f accuracy %.3f)"
          % (result.train_score.sr, result.train_score.accuracy, result.start_train_score.sr,
             result.start_train_score.accuracy))
    for row in evaluation:
        print("frozen policy on %s (validation): SR %.3f, accuracy %.3f, mean latency %.1f ms"
              % (Path(row["recording"]).name, row["sr"], row["accuracy"], row["mean_latency_ms"]))
    return 0
