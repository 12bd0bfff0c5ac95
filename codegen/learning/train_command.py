"""``edgesplit train``: train a policy in the virtual-time environment and freeze it for the board.

Builds the learning environment (``codegen/learning/environment.py``) for the bundle, the EMULATED
board and the bandwidth recordings; mixes in transitions from trace databases (``--from-traces``);
runs the algorithm (``--algo ddpg``: ``codegen/learning/ddpg.py``, for ``--epochs`` actions; ``--algo search``:
``codegen/learning/search_command.py``, policy search over a gated policy); writes
the frozen actor with policies_lite and its provenance, a learning-curve PNG beside it, and
evaluates the frozen policy greedily on every training recording, through the same controller
``run`` uses.
"""
import logging
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

from edgesplit.codegen.learning import search_command
from edgesplit.codegen.policy_output import check_policy_out, write_failed
from edgesplit.runtime.commands.number_flags import POSITIVE
from edgesplit.runtime.commands.output import print_json
from edgesplit.runtime.emulation.scenario import DEMO
from edgesplit.runtime.errors import InputError

log = logging.getLogger(__name__)

ALGORITHMS = ("ddpg", "search")
DEFAULT_EPOCHS = 1000
ENERGY_UNIT = "mJ"  # the environment's emulated board: power x time per task


def register(commands) -> None:
    parser = commands.add_parser(
        "train",
        description="Trains an EdgeML policy (per-exit thresholds, cut, action interval) with DDPG (--algo ddpg) "
                    "or a policy search (--algo search) in the virtual-time environment: the runtime's own "
                    "controller, state window, reward and exit rule, the EMULATED board's segment times and power "
                    "model, the bandwidth recordings replayed over a software link. "
                    "One epoch is one action (EdgeML's). Writes the frozen actor (policies_lite .npz with "
                    "provenance) that run, serve and demo load with --policy, a learning-curve PNG beside it (per epoch for "
                    "ddpg, per generation for search), and "
                    "the frozen policy's SR and accuracy on each training recording. "
                    "Train's flags keep their own defaults; "
                    "'edgesplit evaluate' defaults to the demo's scenario for the default bundle (--board %s "
                    "--workload-scale %g --energy-bound %g --link-scale %.4f, and for search --recording-speed %g): "
                    "give train the scenario you will evaluate in (evaluate warns where they differ). "
                    "See docs/learning.md." % (DEMO["board"], DEMO["workload_scale"], DEMO["energy_bound_mj"],
                                               DEMO["link_scale"], DEMO["recording_speed"]))
    main = parser.add_argument_group("what to train")
    main.add_argument("--algo", required=True, choices=ALGORITHMS, help="the learning algorithm")
    main.add_argument("--bundle", default="default", help="bundle directory ('default': the embedded MNIST one)")
    main.add_argument("--seed", type=int, required=True, help="seeds the agent, its noise and the episodes")
    main.add_argument("--out", required=True, help="the frozen policy to write (.npz; refused if it exists, checked "
                                                   "before training starts, unless --overwrite); the learning curve "
                                                   "goes beside it as NAME_curve.png")
    main.add_argument("--overwrite", action="store_true",
                      help="replace --out if it exists (atomically: the old policy stays whole until the new one "
                           "is written). --force is the guard's (--from-traces), not this")
    main.add_argument("--json", action="store_true", help="print the summary as one JSON document")
    main.add_argument("--no-progress", action="store_true", help="hide the progress bar (stderr)")
    scenario = parser.add_argument_group(
        "the scenario (the environment: board, workload, network, bounds; evaluate in the same one)")
    scenario.add_argument("--board", required=True, metavar="NAME",
                          help="the EMULATED board (a board config from 'edgesplit board list' with an [emulation] "
                               "table): segment times from its MACs model, energy from its power model, in mJ")
    scenario.add_argument("--workload-scale", type=float, default=1.0,
                          help="segment time multiplier, as run --workload-scale (default 1)")
    scenario.add_argument("--measured-profile", metavar="NAME",
                          help="time segments from BUNDLE/profiles/NAME.json (edgesplit profile) instead of the MACs "
                               "model, as run --measured-profile")
    scenario.add_argument("--link-traces", nargs="+", required=True, metavar="T",
                          help="bandwidth recordings (files in any format 'edgesplit link' reads, or shipped names) "
                               "to train on; each episode replays one of them from a random second")
    scenario.add_argument("--link-scale", type=float, default=1.0, help="multiply the recordings' rates (default 1)")
    scenario.add_argument("--rtt-ms", type=float, default=20.0, help="the link's base RTT (default 20)")
    scenario.add_argument("--latency-bound-ms", type=float, default=None,
                          help="latency bound per task (default: the demo's 100 for the default bundle, else the "
                               "board config's, as evaluate and build-policy take it)")
    scenario.add_argument("--energy-bound", type=float,
                          help="energy bound per task in mJ (the emulated board's power x time); default: none")
    scenario.add_argument("--period-ms", type=float, default=100.0, help="one task arrives every this many ms "
                          "(default 100)")
    scenario.add_argument("--episode-tasks", type=int, default=500, help="tasks per episode (default 500)")
    scenario.add_argument("--images", help=".npy profiling images, preprocessed as the bundle's input (required for a "
                                           "bundle other than the default)")
    scenario.add_argument("--labels", help=".npy labels for --images")
    training = parser.add_argument_group("training (both algorithms)")
    training.add_argument("--select-every", type=int, default=25, metavar="N",
                          help="every N epochs after the warm-up, run the greedy actor on validation episodes of the "
                               "training recordings and keep the best actor seen (higher SR, then accuracy) rather "
                               "than the last; 0 keeps the last (default 25)")
    training.add_argument("--restarts", type=int, default=1, metavar="K",
                          help="train K independent runs (seeds S, S+1000, ...) and keep the one whose selected actor "
                               "validated best on the training recordings (default 1); ddpg: needs --select-every > 0; "
                               "search: K cross-entropy runs from the same start, every run's finalists validated "
                               "together on the validation recordings")
    training.add_argument("--write-traces", metavar="DB",
                          help="also log this run's training transitions to this trace database (for --from-traces "
                               "elsewhere: EdgeML's transfer of MDP traces to another board)")
    ddpg = parser.add_argument_group("ddpg (--algo ddpg)")
    ddpg.add_argument("--epochs", type=int, help="ddpg: actions taken in the environment (default %d)" % DEFAULT_EPOCHS)
    retraining = parser.add_argument_group("retraining from what boards log (--from-traces)")
    retraining.add_argument("--from-traces", nargs="+", default=[], metavar="DB",
                            help="trace databases written by run/serve (or --write-traces): their transitions go in the "
                                 "replay buffer (off-policy) and are learnt from before the first epoch; refused if a "
                                 "run's bundle, state features or energy unit differ")
    _add_retraining_arguments(retraining)
    search_command.add_arguments(parser.add_argument_group("search (--algo search)"))
    # The environment paces arrivals i x period: a period of 0 (run's "back to back") has no meaning here.
    parser.set_defaults(handler=run, number_flag_ranges={"--period-ms": POSITIVE})


def _add_retraining_arguments(parser) -> None:
    from edgesplit.codegen.learning.retraining import add_arguments

    add_arguments(parser)


def default_latency_bound_ms(args) -> float:
    """``--latency-bound-ms`` when given; else what ``evaluate`` and ``build-policy`` take: the demo's bound for the
    default bundle, the board config's for any other (an unknown board is refused by name later)."""
    if args.latency_bound_ms is not None:
        return args.latency_bound_ms
    from edgesplit.runtime.boards.config import BoardConfigError, load_named_board
    from edgesplit.runtime.default_bundle import DEFAULT_BUNDLE

    if args.bundle == DEFAULT_BUNDLE:
        return 1e3 * DEMO["latency_bound_s"]
    try:
        return float(load_named_board(args.board).bounds.latency_ms)
    except BoardConfigError:
        return 1e3 * DEMO["latency_bound_s"]


def _check_args(args) -> Path:
    args.latency_bound_ms = default_latency_bound_ms(args)
    out = check_policy_out(args.out, args.overwrite, "--overwrite")
    if args.epochs is not None and args.epochs < 1:
        raise InputError("--epochs must be >= 1, got %d" % args.epochs)
    if args.restarts < 1:
        raise InputError("--restarts must be >= 1, got %d" % args.restarts)
    if args.restarts > 1 and args.select_every == 0 and args.algo != "search":
        raise InputError("--restarts %d chooses among runs by validation: it needs --select-every > 0" % args.restarts)
    if args.select_every < 0:
        raise InputError("--select-every must be >= 0 (0 keeps the last actor), got %d" % args.select_every)
    if args.episode_tasks < 1:
        raise InputError("--episode-tasks must be >= 1, got %d" % args.episode_tasks)
    # Number flags (--rtt-ms, --link-scale, ...) are checked before this by runtime/commands/number_flags.py.
    for db in args.from_traces:
        if not Path(db).is_file():
            raise InputError("--from-traces %s: no such trace database" % db)
    if bool(args.images) != bool(args.labels):
        raise InputError("--images and --labels go together")
    return out


def _scenario(args, bundle):
    from edgesplit.codegen.learning.environment import Scenario
    from edgesplit.runtime.default_bundle import default_bundle_path
    from edgesplit.runtime.emulation.board import load_emulated_board
    from edgesplit.runtime.emulation.link.shipped import resolve_recording

    load_emulated_board(args.board)  # an unknown or non-emulatable board is refused by name first
    is_default = Path(bundle.root).resolve() == Path(default_bundle_path()).resolve()
    if not is_default and not args.images:
        raise InputError("bundle %s needs its own profiling set: --images X.npy --labels Y.npy, preprocessed as its "
                         "input (images its model and heads were not trained on)" % bundle.root)
    recordings = [resolve_recording(name) for name in args.link_traces]
    return Scenario(bundle_dir=Path(bundle.root), board=args.board, recordings=recordings,
                    link_scale=args.link_scale, rtt_s=args.rtt_ms / 1e3, workload_scale=args.workload_scale,
                    measured_profile=args.measured_profile, latency_bound_s=args.latency_bound_ms / 1e3,
                    energy_bound=args.energy_bound, period_s=args.period_ms / 1e3, episode_tasks=args.episode_tasks,
                    images=Path(args.images) if args.images else None,
                    labels=Path(args.labels) if args.labels else None)


def provenance(args, bundle, scenario, params, result, offline) -> Dict[str, Any]:
    from edgesplit.codegen.learning import environment
    from edgesplit.codegen.learning.ddpg import ALGORITHM, hyperparameters
    from edgesplit.runtime.bundle.manifest import file_sha256

    traces = [str(r) for r in scenario.recordings] + list(args.from_traces)
    return {
        "algorithm": ALGORITHM, "traces": traces,
        "recordings": [{"path": str(r), "sha256": file_sha256(str(r))} for r in scenario.recordings],
        "from_traces": [{"path": str(db), "sha256": file_sha256(str(db))} for db in args.from_traces],
        "offline_transitions": int(len(offline.reward)) if offline is not None else 0,
        "seeds": [params.seed], "seed": params.seed, "hyperparameters": hyperparameters(params),
        "environment_version": getattr(environment, "ENVIRONMENT_VERSION", "unknown"),
        "bundle": bundle.manifest.name, "bundle_sha256": bundle.hash, "bundle_path": str(bundle.root),
        "board": args.board, "board_emulated": True, "workload_scale": args.workload_scale,
        "measured_profile": args.measured_profile, "link_scale": args.link_scale, "rtt_s": args.rtt_ms / 1e3,
        "recording_speed": scenario.recording_speed,
        "period_s": args.period_ms / 1e3, "episode_tasks": args.episode_tasks,
        "bounds": {"latency_s": args.latency_bound_ms / 1e3, "energy": args.energy_bound},
        "energy_unit": ENERGY_UNIT, "energy_proxy": "emulated",
        "images": str(args.images) if args.images else "default bundle profiling set",
        "training": {"epochs": params.epochs, "tasks": result.tasks, "episodes": result.episodes,
                     "seconds": round(result.seconds, 3), "selection": result.selection.to_dict()},
    }


def curve_figure():
    """The two stacked panels of a learning curve (score above; SR and accuracy below)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(2, 1, figsize=(7, 5), sharex=True)


def save_curve(fig, axes, title: str, out_png: Path) -> None:
    import matplotlib.pyplot as plt

    axes[0].set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(str(out_png), dpi=110)
    plt.close(fig)


def plot_curve(log_, out_png: Path, title: str, window: int = 50) -> None:
    from edgesplit.codegen.learning.ddpg import moving_average

    arrays = log_.to_arrays()
    tasks = np.maximum(arrays["tasks"], 1)
    epochs = np.arange(1, len(arrays["reward"]) + 1)
    fig, axes = curve_figure()
    axes[0].plot(epochs, moving_average(arrays["reward"], window), color="tab:blue")
    axes[0].set_ylabel("reward (%d-epoch mean)" % window)
    sr = moving_average(arrays["met"], window) / moving_average(tasks, window)
    accuracy = moving_average(arrays["correct"], window) / moving_average(tasks, window)
    axes[1].plot(epochs, sr, label="satisfaction rate", color="tab:green")
    axes[1].plot(epochs, accuracy, label="accuracy", color="tab:orange")
    axes[1].set_ylim(0, 1.02)
    axes[1].set_xlabel("epoch (one action)")
    axes[1].legend(loc="lower right")
    save_curve(fig, axes, title, out_png)


def evaluate_policy(env, policy_path: Path, seed: int) -> List[Dict[str, Any]]:
    """The frozen policy, loaded as run loads it, for one episode on each training recording."""
    from edgesplit.runtime.controller.strategies import load_policy_strategy

    strategy = load_policy_strategy(policy_path, env.n_exits, env.n_cuts, name="policy")
    rows = []
    seen = set()
    for index, recording in enumerate(env.scenario.recordings):
        if id(recording) in seen:  # a board's rebuilt network is repeated to weight it (--board-network-share)
            continue
        seen.add(id(recording))
        episode = env.run(strategy, seed=seed, recording=index)
        rows.append({"recording": str(getattr(recording, "name", recording)), "sr": episode.sr,
                     "accuracy": episode.accuracy,
                     "mean_latency_ms": episode.mean_latency_ms, "reward": episode.reward, "tasks": episode.tasks})
    return rows


def warn_if_accuracy_given_away(env, evaluation: List[Dict[str, Any]]) -> float:
    """The final exit's accuracy on the profiling set; a warning when the frozen policy's accuracy on the training
    recordings is more than ``evaluate``'s allowance below it (DDPG maximises EdgeML's reward, which an actor that
    stops every task at the first exit can earn: ``evaluate`` would then rank it outside the allowance)."""
    from edgesplit.codegen.learning.baselines import ACCURACY_ALLOWANCE

    final = float(np.mean([row[env.static.final_exit] for row in env.static.correct]))
    tasks = sum(row["tasks"] for row in evaluation)
    if tasks:
        accuracy = sum(row["accuracy"] * row["tasks"] for row in evaluation) / tasks
        if final - accuracy > ACCURACY_ALLOWANCE:
            log.warning("the policy kept is %.1f %% accurate on the training recordings, %.1f points below the final "
                        "exit's %.1f %% on the profiling set: 'edgesplit evaluate' ranks a policy more than %.1f points "
                        "below the most accurate strategy outside its allowance. DDPG maximises EdgeML's reward, not "
                        "accuracy: train more epochs or --restarts, or use --algo search (it holds an accuracy floor)",
                        100 * accuracy, 100 * (final - accuracy), 100 * final, 100 * ACCURACY_ALLOWANCE)
    return final


def run(args) -> int:
    import torch
    from tqdm import tqdm

    from edgesplit.codegen.learning.ddpg import Args, train
    from edgesplit.codegen.learning.environment import Environment
    from edgesplit.codegen.learning.trace_transitions import read_transitions
    from edgesplit.codegen.learning.ddpg import ActionCodec
    from edgesplit.codegen.learning.retraining import CandidateGuard, check_arguments, prepare_in_temporary_dir
    from edgesplit.runtime.default_bundle import resolve_bundle

    check_arguments(args)  # before the search's: its flags mean nothing without --from-traces either
    search_command.check_flags(args)
    if args.algo == "search":
        return search_command.run(args)
    if args.epochs is None:
        args.epochs = DEFAULT_EPOCHS
    out = _check_args(args)
    torch.set_num_threads(1)  # networks this small run fastest on one thread
    bundle = resolve_bundle(args.bundle)
    scenario = _scenario(args, bundle)
    plan, workdir = prepare_in_temporary_dir(args, scenario, bundle)
    env = Environment(plan.training, seed=args.seed)
    params = Args(seed=args.seed, epochs=args.epochs, select_every=args.select_every, restarts=args.restarts)
    if args.epochs <= params.warmup_epochs and not args.from_traces:
        log.warning("--epochs %d: the first %d epochs are random actions (DDPG's warm-up, filling the replay buffer); "
                    "the actor written has had %d epochs of training: give more (EdgeML trains 1000)",
                    args.epochs, params.warmup_epochs, max(0, args.epochs - params.warmup_epochs))
    offline = None
    if args.from_traces:
        offline = read_transitions(args.from_traces, bundle.hash, params.features, ENERGY_UNIT,
                                   ActionCodec(env.n_exits, env.n_cuts, params.max_interval))
        log.info("%d transitions from %s go in the replay buffer", len(offline.reward), ", ".join(args.from_traces))
    bar = tqdm(total=args.epochs * args.restarts, desc="training %s" % args.algo, unit="epoch", disable=args.no_progress,
               leave=False, file=sys.stderr)

    def on_epoch(epoch, log_):
        bar.update(1)
        if epoch % 50 == 49:
            recent = slice(max(0, epoch - 99), epoch + 1)
            bar.set_postfix(reward="%.3f" % np.mean(log_.reward[recent]),
                            sr="%.3f" % (sum(log_.met[recent]) / max(1, sum(log_.tasks[recent]))))

    started = time.perf_counter()
    guard = CandidateGuard(args, plan, workdir, out)
    try:
        seeds = list(guard.seeds())
        for index, seed in enumerate(seeds):
            params = Args(seed=seed, epochs=args.epochs, select_every=args.select_every, restarts=args.restarts)
            result = train(env, params, offline=offline, on_epoch=on_epoch)
            prov = dict(provenance(args, bundle, scenario, params, result, offline), retraining=plan.report)
            path = guard.path(seed)
            try:
                policy_id = result.agent.export(path, params.features, prov)
            except OSError as exc:  # --out itself without --from-traces: the disk filled up, the folder went away
                raise write_failed(path, exc) from None
            guard.add(seed, path, policy_id, result, params)
            if index + 1 < len(seeds):
                bar.reset()  # the next candidate's epochs (a reset after the last would redraw an empty bar)
    finally:
        bar.close()
    seed, result, params, policy_id = guard.choose()
    if policy_id is None:
        return guard.refuse(args)
    curve = out.with_name(out.stem + "_curve.png")
    try:
        plot_curve(result.log, curve, "%s on %s (emulated), %s, seed %d"
                   % (args.algo, args.board, ", ".join(Path(t).name for t in args.link_traces), seed))
    except OSError as exc:
        raise write_failed(curve, exc, "the learning curve (the policy beside it is written)") from None
    if args.write_traces:
        from edgesplit.codegen.learning.trace_transitions import write_transitions

        write_transitions(Path(args.write_traces), result.logged, result.agent.codec, bundle.hash,
                          "%s (emulated)" % args.board, params.features, ENERGY_UNIT,
                          {"command": "train", "algorithm": args.algo, "seed": seed,
                           "recordings": [str(r) for r in scenario.recordings],
                           "bounds": {"latency_s": scenario.latency_bound_s, "energy": scenario.energy_bound}})
    evaluation = evaluate_policy(env, out, seed)
    final_accuracy = warn_if_accuracy_given_away(env, evaluation)
    arrays = result.log.to_arrays()
    last = slice(max(0, args.epochs - 100), args.epochs)
    summary = {"out": str(out), "policy_id": policy_id, "curve": str(curve), "algorithm": args.algo,
               "board": args.board, "bundle": str(bundle.root), "seed": seed, "epochs": args.epochs,
               "tasks": result.tasks, "episodes": result.episodes, "offline_transitions": result.offline_transitions,
               "train_seconds": round(result.seconds, 3), "tasks_per_s": round(result.tasks / result.seconds, 1),
               "seconds": round(time.perf_counter() - started, 3),
               "last_100_epochs": {"reward": float(arrays["reward"][last].mean()),
                                   "sr": float(arrays["met"][last].sum() / max(1, arrays["tasks"][last].sum()))},
               "selection": result.selection.to_dict(), "evaluation": evaluation,
               "final_exit_accuracy": final_accuracy, "write_traces": args.write_traces}
    summary.update(guard.summary())
    if args.json:
        print_json(summary)
        return 0
    print("wrote %s (policy %s) and %s" % (out, policy_id[:12], curve))
    print("trained %d epochs (%d tasks, %d episodes) in %.1f s: %.0f tasks/s"
          % (args.epochs, result.tasks, result.episodes, result.seconds, result.tasks / result.seconds))
    chosen = result.selection
    if chosen.epoch is not None:
        print("kept the actor as it was after %d epochs%s (provenance selection.epoch %d, counted from 0; validation "
              "on the training recordings: SR %.3f, accuracy %.3f, best of %d checks)"
              % (chosen.epoch + 1, " of restart %d" % chosen.restart if args.restarts > 1 else "", chosen.epoch,
                 chosen.sr, chosen.accuracy, chosen.checks))
    guard.print_verdict()
    for row in evaluation:
        print("frozen policy on %s: SR %.3f, accuracy %.3f, mean latency %.1f ms"
              % (Path(row["recording"]).name, row["sr"], row["accuracy"], row["mean_latency_ms"]))
    return 0
