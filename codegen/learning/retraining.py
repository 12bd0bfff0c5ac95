"""Retraining from what boards log (``train --from-traces``): the environment made to look like the board first,
and a guard so that a fleet never ships a regression.

Three steps, each on the trace databases the boards wrote (``run``/``serve``: task rows and transitions):

1. **Calibration.** The board's speed (its segments' logged times against the modelled ones: a board slower than
   the profile train was told runs at its own workload scale), then the runtime's own timing on it (segment calls
   ending late, per-task and per-reply overheads, how late a reply is still taken) measured from the task rows
   with ``reality.calibrate`` and put in the training scenario, instead of the defaults measured on a quieter host. Needs ``MIN_CALIBRATION_TASKS``
   tasks that ran segments on the device.
2. **The board's network.** Each run's bandwidth, second by second, rebuilt from its task rows
   (``reconstruct_network``) and added to the training recordings.
3. **The guard.** The new policy and the one the board was serving, each run in the calibrated environment on
   the board's rebuilt network(s) for several seeds; the new one is written only if it scores at least as well
   (``judge``). Any algorithm's policy file goes through the same guard.

Workstation only; see docs/learning.md, "The closed loop".
"""
import logging
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from edgesplit.policies_lite import short_policy_id
from edgesplit.runtime.errors import InputError
from edgesplit.runtime.traces import TraceError, open_readonly

from edgesplit.codegen.learning.environment import Recording, Scenario

log = logging.getLogger(__name__)

# Calibration needs this many tasks that ran at least one segment on the device: at a few calls per task that is
# 400-800 segment calls, enough to see late calls at the 2.5-14 % rates measured (10-100 of them).
MIN_CALIBRATION_TASKS = 200
# Answered offloads needed before the reply handling and the lateness of a taken reply are calibrated too.
MIN_CALIBRATION_OFFLOADS = 20
# A run shorter than this (seconds of tasks) is not rebuilt as a recording: too little of a network to learn from.
MIN_NETWORK_SECONDS = 10
# The guard refuses a policy that loses this much accuracy even at an equal or higher SR (as build-policy's and
# evaluate's allowance).
ACCURACY_ALLOWANCE = 0.015
GUARD_SEEDS = 5
# What calibrate_from_runs sets in a scenario: the board's speed and reality.calibrated without the exchange figures.
CALIBRATED_FIELDS = ("workload_scale", "segment_excess_s", "task_overhead_s", "reply_overhead_s", "timeout_grace_s")
REFUSED_EXIT_CODE = 3  # edgesplit train: the guard refused the new policy (nothing written)


class RetrainingError(InputError):
    """The databases cannot be used as asked (too few tasks, no incumbent policy): the message says what to do."""


@dataclass
class BoardRun:
    """One run of a trace database that logged tasks: what the board did, as the retraining reads it."""

    db: Path
    run_id: str
    config: Dict[str, Any]
    rows: List[Tuple]          # TASK_COLUMNS, ordered by task_id
    last_policy_id: Optional[str]

    @property
    def where(self) -> str:
        return "%s: run %s" % (self.db, self.run_id[:12])

    def on_device(self) -> int:
        """Tasks that ran at least one segment on the device (what segment calibration learns from)."""
        return sum(1 for row in self.rows if row[COL["segment_times"]] not in (None, "", "{}"))


TASK_COLUMNS = ("task_id", "arrival_s", "deadline_s", "cut", "bytes_sent", "transfer_s", "bandwidth_bps", "fallback",
                "segment_times", "policy_id")
COL = {name: i for i, name in enumerate(TASK_COLUMNS)}


def read_board_runs(paths: Sequence[Path]) -> List[BoardRun]:
    """Every run with task rows in ``paths`` (a database of transitions only, as ``train --write-traces`` writes,
    has none)."""
    import json

    runs = []
    for path in map(Path, paths):
        try:
            with open_readonly(path) as conn:
                for run_id, config in conn.execute("SELECT run_id, config FROM runs ORDER BY started_s").fetchall():
                    rows = conn.execute("SELECT %s FROM tasks WHERE run_id = ? ORDER BY task_id"
                                        % ", ".join(TASK_COLUMNS), (run_id,)).fetchall()
                    if rows:
                        runs.append(BoardRun(path, run_id, json.loads(config or "{}"), rows,
                                             rows[-1][COL["policy_id"]]))
        except TraceError as exc:
            raise RetrainingError(str(exc)) from None
    return runs


def check_runs_match(runs: Sequence[BoardRun], scenario: Scenario, calibrating: bool = True) -> None:
    """A run of another emulated board has other segment times: its timing says nothing about this one. A run at
    another workload scale is the same board, faster or slower: only the calibration (which measures its speed)
    can use it."""
    for run in runs:
        emulation = run.config.get("emulation") or {}
        board = emulation.get("board")
        name = board.get("name") if isinstance(board, dict) else board
        if name is not None and name != scenario.board:
            raise RetrainingError("%s served as the emulated board %s, this training is for %s: train for the board "
                                  "the traces come from (--board %s)" % (run.where, name, scenario.board, name))
        scale = emulation.get("workload_scale")
        if (not calibrating and scale is not None
                and not math.isclose(float(scale), scenario.workload_scale, rel_tol=1e-6)):
            raise RetrainingError("%s ran at workload scale %g, this training at %g without calibration: give "
                                  "--workload-scale %g, or drop --no-calibrate (it measures the board's speed)"
                                  % (run.where, float(scale), scenario.workload_scale, float(scale)))


# ---------------------------------------------------------------- 1. calibration


def check_enough_to_calibrate(runs: Sequence[BoardRun]) -> int:
    """The number of tasks that ran segments on the device; refuses fewer than ``MIN_CALIBRATION_TASKS``."""
    on_device = sum(run.on_device() for run in runs)
    if on_device < MIN_CALIBRATION_TASKS:
        raise RetrainingError("%s: %d tasks ran segments on the device (%d tasks in all); calibrating the "
                              "environment's timing needs at least %d: let the board log more tasks, or pass "
                              "--no-calibrate"
                              % (", ".join(sorted({str(r.db) for r in runs})), on_device,
                                 sum(len(r.rows) for r in runs), MIN_CALIBRATION_TASKS))
    return on_device


def calibrate_from_runs(runs: Sequence[BoardRun], scenario: Scenario, network: Path) -> Tuple[Scenario, Dict[str, Any]]:
    """``scenario`` with the runtime's timing measured from ``runs`` (their databases; ``network`` is one rebuilt
    recording, a file, which ``reality.calibrate`` needs for its exchange figures: those are left at the scenario's,
    since a rate rebuilt from the same transfers cannot also measure their excess)."""
    from edgesplit.codegen.learning.reality import calibrate, calibrated

    on_device = check_enough_to_calibrate(runs)
    dbs = sorted({run.db for run in runs}, key=str)
    measured = calibrate(dbs, scenario, str(network))
    # The board's speed first (a unit slower than its profile, throttled, a heavier pipeline): the scenario's
    # workload scale times the ratio the segment calls show; the excess is then measured against that model.
    ratio = speed_ratio(measured["segment_median_s"], measured["segment_modelled_s"])
    believed, believed_modelled = scenario.workload_scale, measured["segment_modelled_s"]
    scenario = replace(scenario, workload_scale=believed * ratio)
    measured = calibrate(dbs, scenario, str(network))
    kept = {k: v for k, v in measured.items() if k not in ("exchange_overhead_s", "exchange_jitter_s",
                                                            "segment_median_s", "segment_modelled_s")}
    if measured.get("offloads", 0) < MIN_CALIBRATION_OFFLOADS:
        kept.pop("reply_overhead_s", None)
        kept.pop("timeout_grace_s", None)
    out = calibrated(scenario, kept)
    report = {k: v for k, v in measured.items() if not k.endswith("excess_s")}
    report.update({"segment_calls": len(measured["segment_excess_s"]), "tasks_on_device": on_device,
                   "applied": sorted(k for k in ("task_overhead_s", "reply_overhead_s", "timeout_grace_s")
                                     if kept.get(k) is not None) + ["segment_excess_s", "workload_scale"],
                   "speed": {"believed_workload_scale": believed, "workload_scale": scenario.workload_scale,
                             "ratio": ratio, "segment_median_s": measured["segment_median_s"],
                             "segment_modelled_s": measured["segment_modelled_s"],
                             "segment_modelled_s_believed": believed_modelled},
                   "kept_default": {"exchange_overhead_s": scenario.exchange_overhead_s,
                                    "exchange_jitter_s": scenario.exchange_jitter_s}})
    return out, report


def speed_ratio(logged_s: Dict[str, float], modelled_s: Dict[str, float]) -> float:
    """How much slower (> 1) or faster than modelled the board runs its segments: the least-squares ratio through the
    origin of each segment's median logged call time to its modelled time, sum(l x m) / sum(m^2). The big segments
    decide, as they decide the latency; a free straight-line fit's slope is set by noise when the segments are of
    about one size (two equal main blocks). The per-call overhead stays in the excess. 1.0 when nothing can be fitted."""
    ids = sorted(set(logged_s) & set(modelled_s))
    modelled = np.array([modelled_s[k] for k in ids], dtype=float)
    logged = np.array([logged_s[k] for k in ids], dtype=float)
    usable = np.isfinite(modelled) & np.isfinite(logged) & (modelled > 0)
    denominator = float(np.sum(modelled[usable] ** 2))
    ratio = float(np.sum(logged[usable] * modelled[usable]) / denominator) if denominator > 0 else 1.0
    if not ratio > 0:
        log.warning("segment times fit a speed ratio of %.3g: keeping the believed workload scale", ratio)
        return 1.0
    return ratio


# ---------------------------------------------------------------- 2. the board's network


def reply_bytes(bundle) -> int:
    """Wire bytes of a reply carrying the final scores (as the environment counts them)."""
    from edgesplit.runtime.transport import wire

    out = bundle.manifest.outputs[0]
    reply = wire.encode_reply(12345, "ok", "", bundle.manifest.exits[-1].id, 0.0012345, 0.0012345,
                              {out.name: np.zeros([1] + list(out.shape[1:]), dtype=out.dtype)})
    return wire.message_bytes(reply)


def reconstruct_network(run: BoardRun, scenario: Scenario, reply: int) -> Tuple[Recording, Dict[str, Any]]:
    """The bandwidth the board's link had, one rate per second of the run, from its task rows.

    Per second (from the run's first arrival): the answered offloads' rates, inverting the environment's own link
    model (request + reply bytes over transfer time less the base RTT and the scenario's per-exchange overhead at
    its median), their median; else, where requests went unanswered, the rate they would have needed (an upper
    bound) or the runtime's estimate if lower; else the runtime's estimate logged with the tasks (probes keep it
    close to the link while nothing is offloaded); a second without a task repeats its neighbour. Rates are
    divided by the scenario's link scale, which the environment multiplies back."""
    rtt = float((run.config.get("link") or {}).get("rtt_ms", 1e3 * scenario.rtt_s)) / 1e3
    overhead = scenario.exchange_overhead_s + math.log(2.0) * scenario.exchange_jitter_s
    origin = run.rows[0][COL["arrival_s"]]
    seconds = int(math.floor(run.rows[-1][COL["arrival_s"]] - origin)) + 1
    answered = [[] for _ in range(seconds)]  # type: List[List[float]]
    bounds = [[] for _ in range(seconds)]  # type: List[List[float]]
    estimates = [[] for _ in range(seconds)]  # type: List[List[float]]
    for row in run.rows:
        k = int(math.floor(row[COL["arrival_s"]] - origin))
        sent, transfer = row[COL["bytes_sent"]] or 0, row[COL["transfer_s"]]
        if row[COL["cut"]] is not None and transfer is not None and sent:
            busy = transfer - rtt - overhead
            if busy > 1e-3:
                answered[k].append(8.0 * (sent + reply) / busy)
        elif row[COL["fallback"]] and sent and row[COL["deadline_s"]] is not None:
            allowed = row[COL["deadline_s"]] - row[COL["arrival_s"]] - rtt - overhead
            if allowed > 1e-3:
                bounds[k].append(8.0 * (sent + reply) / allowed)
        if row[COL["bandwidth_bps"]]:
            estimates[k].append(float(row[COL["bandwidth_bps"]]))
    rates = np.full(seconds, np.nan)
    source = ["filled"] * seconds
    for k in range(seconds):
        if answered[k]:
            rates[k], source[k] = float(np.median(answered[k])), "transfers"
        elif bounds[k]:
            bound = min(bounds[k])
            rates[k] = min(bound, float(np.median(estimates[k]))) if estimates[k] else bound
            source[k] = "unanswered"
        elif estimates[k]:
            rates[k], source[k] = float(np.median(estimates[k])), "estimates"
    known = np.flatnonzero(~np.isnan(rates))
    if not len(known):
        raise RetrainingError("%s: no task carries a transfer or a bandwidth estimate (a run without a peer): the "
                              "board's network cannot be rebuilt; the training mix, the calibration and the guard all "
                              "replay it: pass --no-board-network --no-guard --no-calibrate to learn from its "
                              "transitions alone" % run.where)
    # A second without a task holds the nearest known rate before it (after it, at the start).
    for k in range(seconds):
        if np.isnan(rates[k]):
            before = known[known < k]
            rates[k] = rates[before[-1]] if len(before) else rates[known[0]]
    name = "board %s %s" % (Path(run.db).name, run.run_id[:8])
    report = {"name": name, "db": str(run.db), "run_id": run.run_id, "seconds": seconds, "tasks": len(run.rows),
              "rtt_s": rtt, "exchange_overhead_s": overhead,
              "mean_mbps": float(rates.mean() / 1e6), "min_mbps": float(rates.min() / 1e6),
              "seconds_from": {s: source.count(s) for s in ("transfers", "unanswered", "estimates", "filled")}}
    return Recording(name, 1.0, rates / scenario.link_scale), report


def write_recording_file(recording: Recording, path: Path, link_scale: float) -> Path:
    """``recording`` as ``time mbps`` lines (any reader's ``cooked`` format), at the rates the board had."""
    with open(str(path), "w", encoding="utf-8") as handle:
        for i, bps in enumerate(recording.rates_bps):
            handle.write("%.3f\t%.6f\n" % (i * recording.step_s, bps * link_scale / 1e6))
    return path


# ---------------------------------------------------------------- 3. the guard


@dataclass
class Incumbent:
    """The strategy the board was serving: a policy file, or a static action it logged."""

    description: str
    policy_id: Optional[str]
    path: Optional[Path] = None
    action: Optional[Dict[str, Any]] = None

    def strategy(self, n_exits: int, n_cuts: int):
        from edgesplit.runtime.controller.strategies import Action, StaticStrategy, load_policy_strategy

        if self.path is not None:
            return load_policy_strategy(self.path, n_exits, n_cuts, name="incumbent")
        a = self.action
        return StaticStrategy("incumbent", Action(tuple(a["thresholds"]), int(a["cut"]), int(a.get("interval", 1)),
                                                  bool(a.get("use_exits", True))))


def find_incumbent(runs: Sequence[BoardRun], given: Optional[Path]) -> Incumbent:
    """``--incumbent`` if given; else what the runs logged as serving their last task (one policy for all)."""
    from edgesplit.policies_lite import load_policy

    if given is not None:
        from edgesplit.runtime.shipped_policy import resolve_policy_path

        given = resolve_policy_path(str(given))  # "demo": the shipped policy
        if not Path(given).is_file():
            raise RetrainingError("--incumbent %s: no such policy file" % given)
        from edgesplit.policies_lite import PolicyError

        try:
            policy_id = load_policy(Path(given)).policy_id
        except PolicyError as exc:
            raise RetrainingError("--incumbent %s: %s" % (given, exc)) from None
        return Incumbent("--incumbent %s" % given, policy_id, path=Path(given))
    served = sorted({run.last_policy_id for run in runs if run.last_policy_id})
    if len(served) != 1:
        raise RetrainingError("the runs of %s last served %s: say which policy a new one must beat with "
                              "--incumbent P.npz (or pass --no-guard)"
                              % (", ".join(sorted({str(r.db) for r in runs})),
                                 "several policies (%s)" % ", ".join(short_policy_id(p) for p in served) if served
                                 else "no policy"))
    policy_id = served[0]
    run = [r for r in runs if r.last_policy_id == policy_id][-1]
    strategy = run.config.get("strategy") or {}
    if strategy.get("policy_id") == policy_id and strategy.get("action"):
        return Incumbent("%s: static action %s" % (run.where, strategy["action"]), policy_id, action=strategy["action"])
    source = strategy.get("source")
    if strategy.get("policy_id") != policy_id or not source:
        raise RetrainingError("%s last served policy %s, which its run does not name as a file (it was reloaded since "
                              "the run started): give that policy with --incumbent P.npz (or pass --no-guard)"
                              % (run.where, short_policy_id(policy_id)))
    if not Path(source).is_file():
        raise RetrainingError("%s served policy %s from %s, which is not on this machine: copy it here and give "
                              "--incumbent P.npz (or pass --no-guard)" % (run.where, short_policy_id(policy_id), source))
    found = load_policy(Path(source)).policy_id
    if found != policy_id:
        raise RetrainingError("%s served policy %s from %s, which now holds policy %s: give the served policy with "
                              "--incumbent P.npz (or pass --no-guard)"
                              % (run.where, short_policy_id(policy_id), source, short_policy_id(found)))
    return Incumbent("%s: %s" % (run.where, source), policy_id, path=Path(source))


def score(env, strategy, seeds: Sequence[int]) -> Dict[str, Any]:
    """``strategy`` on every recording of ``env`` from its start, once per seed: mean SR and accuracy."""
    episodes = [env.run(strategy, seed=seed, recording=r, start_s=0.0)
                for r in range(len(env.scenario.recordings)) for seed in seeds]
    srs = [e.sr for e in episodes]
    return {"sr": float(np.mean(srs)), "sr_std": float(np.std(srs)), "sr_each": srs,
            "accuracy": float(np.mean([e.accuracy for e in episodes])),
            "mean_latency_ms": float(np.mean([e.mean_latency_ms for e in episodes])),
            "offloaded_share": float(np.mean([e.per_task["offloaded"].mean() for e in episodes])),
            "episodes": len(episodes), "tasks": int(sum(e.tasks for e in episodes))}


def score_policy(env, path: Path, seeds: Sequence[int]) -> Dict[str, Any]:
    """A policy file (of any algorithm), loaded as run and serve load it, scored on ``env``."""
    from edgesplit.runtime.controller.strategies import load_policy_strategy

    return score(env, load_policy_strategy(path, env.n_exits, env.n_cuts, name="candidate"), seeds)


def judge(env, candidate: Path, incumbent: Incumbent, seeds: Sequence[int],
          allowance: float = ACCURACY_ALLOWANCE) -> Dict[str, Any]:
    """Score the candidate policy file and the incumbent on ``env`` (the board's network, calibrated timing); it
    passes when its mean SR is at least the incumbent's and its accuracy at most ``allowance`` below."""
    return verdict(score_policy(env, candidate, seeds), score(env, incumbent.strategy(env.n_exits, env.n_cuts), seeds),
                   incumbent, seeds, env, allowance)


def verdict(new: Dict[str, Any], old: Dict[str, Any], incumbent: Incumbent, seeds: Sequence[int],
            env, allowance: float = ACCURACY_ALLOWANCE) -> Dict[str, Any]:
    """The guard's rule on two scores (``score``)."""
    passed = new["sr"] >= old["sr"] and new["accuracy"] >= old["accuracy"] - allowance
    if passed:
        reason = "SR %.3f >= the incumbent's %.3f, accuracy %.3f (incumbent %.3f)" % (
            new["sr"], old["sr"], new["accuracy"], old["accuracy"])
    elif new["sr"] < old["sr"]:
        reason = "SR %.3f < the incumbent's %.3f" % (new["sr"], old["sr"])
    else:
        reason = "accuracy %.3f is more than %.1f points below the incumbent's %.3f" % (
            new["accuracy"], 100 * allowance, old["accuracy"])
    return {"passed": bool(passed), "reason": reason, "accuracy_allowance": allowance, "new": new,
            "incumbent": dict(old, policy_id=incumbent.policy_id, source=incumbent.description), "seeds": list(seeds),
            "recordings": [str(getattr(r, "name", r)) for r in env.scenario.recordings]}


# ---------------------------------------------------------------- what train --from-traces does with all of it


def add_arguments(parser) -> None:
    parser.add_argument("--no-calibrate", action="store_true",
                        help="with --from-traces: keep the environment's default timing instead of measuring it from "
                             "the databases' tasks (needs %d tasks run on the device)" % MIN_CALIBRATION_TASKS)
    parser.add_argument("--no-board-network", action="store_true",
                        help="with --from-traces: do not add the bandwidth rebuilt from each run's tasks to the "
                             "training recordings")
    parser.add_argument("--board-network-share", type=float, default=0.5, metavar="F",
                        help="with --from-traces: the share of training episodes on the boards' rebuilt networks "
                             "(default 0.5)")
    parser.add_argument("--incumbent", metavar="P.npz",
                        help="with --from-traces: the policy the new one must beat (demo: the shipped one; default: the one "
                             "the runs name as serving their last task)")
    parser.add_argument("--guard-seeds", type=int, default=GUARD_SEEDS,
                        help="with --from-traces: seeds of the guard's runs of each policy (default %d)" % GUARD_SEEDS)
    parser.add_argument("--guard-accuracy-allowance", type=float, default=ACCURACY_ALLOWANCE, metavar="F",
                        help="with --from-traces: the accuracy (a fraction) the new policy may lose against the "
                             "incumbent at an equal or higher SR (default %g)" % ACCURACY_ALLOWANCE)
    parser.add_argument("--no-guard", action="store_true",
                        help="with --from-traces: write the new policy without comparing it with the incumbent")
    parser.add_argument("--candidates", type=int, default=1, metavar="K",
                        help="with --from-traces: train K policies (seeds SEED .. SEED+K-1) and keep the one the guard "
                             "scores highest (default 1)")
    parser.add_argument("--force", action="store_true",
                        help="write the new policy even when the guard scores it below the incumbent")


@dataclass
class Plan:
    """What ``prepare`` decided: the scenario to train in, and the guard's environment and incumbent."""

    training: Scenario
    guard: Optional[Scenario] = None
    incumbent: Optional[Incumbent] = None
    report: Dict[str, Any] = field(default_factory=dict)
    board_recordings: List[Recording] = field(default_factory=list)
    timing: Dict[str, Any] = field(default_factory=dict)  # the scenario fields the calibration set
    share: float = 0.0                                    # of episodes on the boards' networks (0: not added)

    def apply(self, scenario: Scenario, add_networks: bool = True) -> Scenario:
        """Another scenario of the same board (an algorithm's own recordings, its validation set) with the
        calibrated timing and, with ``add_networks``, the boards' networks in ``share`` of its episodes."""
        recordings = list(scenario.recordings)
        if add_networks:
            recordings += board_share(self.board_recordings, len(recordings), self.share)
        return replace(scenario, recordings=recordings, **self.timing)


def check_arguments(args) -> None:
    if not (0.0 <= args.board_network_share < 1.0):
        raise InputError("--board-network-share must be in [0, 1), got %r" % args.board_network_share)
    if args.candidates < 1:
        raise InputError("--candidates must be >= 1, got %d" % args.candidates)
    if args.candidates > 1 and (args.no_guard or not args.from_traces):
        raise InputError("--candidates %d: choosing among candidates needs the guard (--from-traces, without "
                         "--no-guard)" % args.candidates)
    if not (0.0 <= args.guard_accuracy_allowance <= 1.0):
        raise InputError("--guard-accuracy-allowance must be a fraction in [0, 1], got %r"
                         % args.guard_accuracy_allowance)
    if args.guard_seeds < 1:
        raise InputError("--guard-seeds must be >= 1, got %d" % args.guard_seeds)
    used = [flag for flag, on in (("--incumbent", args.incumbent), ("--no-calibrate", args.no_calibrate),
                                  ("--no-board-network", args.no_board_network), ("--no-guard", args.no_guard),
                                  ("--force", args.force))
            if on]
    if used and not args.from_traces:
        raise InputError("%s: only with --from-traces DB... (they act on the boards' trace databases)%s"
                         % (", ".join(used), "; to replace an existing --out file pass --overwrite"
                            if args.force else ""))


def prepare_in_temporary_dir(args, scenario: Scenario, bundle) -> Tuple[Plan, Path]:
    """``prepare`` with a fresh working directory for the guard's files (the plan, the directory). The directory (the
    board's network as a recording, the candidates) is removed when the process ends, however it ends: ``train`` is a
    command, and what it keeps is ``--out`` (a kept candidate is copied there; the provenance records every
    recording's sha256 and the trace databases it came from)."""
    import atexit
    import shutil
    import tempfile

    workdir = Path(tempfile.mkdtemp(prefix="edgesplit-train-"))
    atexit.register(shutil.rmtree, str(workdir), True)
    return prepare(args, scenario, bundle, workdir), workdir


def prepare(args, scenario: Scenario, bundle, workdir: Path) -> Plan:
    """Read the databases' task rows; calibrate, add the boards' networks, find the incumbent, as flagged."""
    check_arguments(args)
    if not args.from_traces:
        return Plan(scenario, report={"applies": False, "reason": "no --from-traces"})
    runs = read_board_runs([Path(p) for p in args.from_traces])
    if not runs:
        log.info("%s: no task rows (transitions only): no calibration, network or guard", ", ".join(args.from_traces))
        return Plan(scenario, report={"applies": False, "reason": "the databases hold transitions only, no tasks"})
    check_runs_match(runs, scenario, calibrating=not args.no_calibrate)
    if not args.no_calibrate:
        check_enough_to_calibrate(runs)
    report = {"applies": True, "runs": [{"db": str(r.db), "run_id": r.run_id, "tasks": len(r.rows)} for r in runs]}
    networks, network_reports = [], []
    needs_network = not (args.no_board_network and args.no_guard and args.no_calibrate)
    for run in runs:
        seconds = run.rows[-1][COL["arrival_s"]] - run.rows[0][COL["arrival_s"]]
        if seconds < MIN_NETWORK_SECONDS:
            log.info("%s: %.1f s of tasks, too short to rebuild its network", run.where, seconds)
            continue
        try:
            recording, rebuilt = reconstruct_network(run, scenario, reply_bytes(bundle))
        except RetrainingError as exc:
            if needs_network:
                raise
            log.info("%s (not needed: no board network, guard or calibration)", exc)
            continue
        networks.append(recording)
        network_reports.append(rebuilt)
    if not networks and not (args.no_board_network and args.no_guard and args.no_calibrate):
        raise RetrainingError("%s: no run has %d s of tasks to rebuild the board's network from: let the board log "
                              "longer, or pass --no-board-network --no-guard --no-calibrate"
                              % (", ".join(args.from_traces), MIN_NETWORK_SECONDS))
    report["networks"] = network_reports
    training = scenario
    if not args.no_calibrate:
        network_file = write_recording_file(networks[0], workdir / "board_network.txt", scenario.link_scale)
        training, report["calibration"] = calibrate_from_runs(runs, scenario, network_file)
    else:
        report["calibration"] = None
    guard_scenario = replace(training, recordings=list(networks),
                             episode_tasks=max(len(r.rows) for r in runs))
    if not args.no_board_network:
        training = replace(training, recordings=list(training.recordings) + board_share(
            networks, len(training.recordings), args.board_network_share))
        report["board_network_share"] = args.board_network_share
    incumbent = None if args.no_guard else find_incumbent(runs, Path(args.incumbent) if args.incumbent else None)
    timing = {} if args.no_calibrate else {k: getattr(training, k) for k in CALIBRATED_FIELDS}
    return Plan(training, None if args.no_guard else guard_scenario, incumbent, report, networks, timing,
                0.0 if args.no_board_network else args.board_network_share)


def board_share(networks: Sequence[Recording], others: int, share: float) -> List[Recording]:
    """``networks`` repeated so that about ``share`` of the episodes (drawn uniformly over recordings) replay one."""
    if share <= 0 or not networks:
        return []
    copies = max(1, int(round(share * others / (1.0 - share) / len(networks)))) if others else 1
    return [n for n in networks for _ in range(copies)]


class CandidateGuard:
    """``train``'s side of the guard: where each candidate policy is written, which one is kept, and whether it may
    replace ``--out`` (without the guard: the single candidate is written to ``--out`` directly)."""

    def __init__(self, args, plan: Plan, workdir: Path, out: Path):
        from edgesplit.codegen.learning.environment import Environment

        self.args, self.plan, self.workdir, self.out = args, plan, workdir, out
        self.guard_seeds = [10_000 + i for i in range(args.guard_seeds)]  # not the training episodes' seeds
        self.env = Environment(plan.guard, seed=args.seed) if plan.guard is not None else None
        self.incumbent = None  # type: Optional[Dict[str, Any]]
        if self.env is not None:
            self.incumbent = score(self.env, plan.incumbent.strategy(self.env.n_exits, self.env.n_cuts),
                                   self.guard_seeds)
        self.candidates = []  # type: List[Dict[str, Any]]
        self._results = {}  # type: Dict[int, Tuple[Any, Any]]
        self.chosen = None  # type: Optional[Dict[str, Any]]
        self.written = False

    def seeds(self) -> range:
        return range(self.args.seed, self.args.seed + self.args.candidates)

    def path(self, seed: int) -> Path:
        return self.out if self.env is None else self.workdir / ("candidate_seed%d.npz" % seed)

    def add(self, seed: int, path: Path, policy_id: str, result, params) -> None:
        entry = {"seed": seed, "policy_id": policy_id}
        if self.env is not None:
            entry["guard"] = verdict(score_policy(self.env, path, self.guard_seeds), self.incumbent,
                                     self.plan.incumbent, self.guard_seeds, self.env,
                                     self.args.guard_accuracy_allowance)
            log.info("candidate seed %d: %s", seed, entry["guard"]["reason"])
        self.candidates.append(entry)
        self._results[seed] = (result, params, path)

    def choose(self):
        """(seed, training result, params, policy id written to --out, or None when the guard refused)."""
        if self.env is None:
            entry = self.candidates[0]
            self.chosen, self.written = entry, True
            result, params, _ = self._results[entry["seed"]]
            return entry["seed"], result, params, entry["policy_id"]
        entry = max(self.candidates, key=lambda c: (c["guard"]["passed"], c["guard"]["new"]["sr"],
                                                    c["guard"]["new"]["accuracy"]))
        self.chosen = entry
        result, params, path = self._results[entry["seed"]]
        if not (entry["guard"]["passed"] or self.args.force):
            return entry["seed"], result, params, None
        import shutil

        from edgesplit.policies_lite.files import atomic_write

        # The candidate lies in a temporary folder, maybe on another file system than --out (a tmpfs /tmp), where
        # a rename fails: copy it into a temporary sibling of --out and rename that.
        from edgesplit.codegen.policy_output import write_failed

        try:
            with atomic_write(self.out) as handle, open(str(path), "rb") as candidate:
                shutil.copyfileobj(candidate, handle)
        except OSError as exc:
            raise write_failed(self.out, exc) from None
        self.written = True
        return entry["seed"], result, params, entry["policy_id"]

    def summary(self) -> Dict[str, Any]:
        out = {"retraining": {k: v for k, v in self.plan.report.items()}, "written": self.written}
        if self.env is not None:
            forced = bool(self.args.force and not self.chosen["guard"]["passed"])
            out["guard"] = dict(self.chosen["guard"], forced=forced,
                                chosen_seed=self.chosen["seed"], candidates=self.candidates)
        return out

    def refuse(self, args) -> int:
        """Nothing written: say why (stderr), the scores as JSON with --json; ``REFUSED_EXIT_CODE``."""
        import sys

        from edgesplit.runtime.commands.output import print_json

        g = self.chosen["guard"]
        if args.json:
            print_json(dict(self.summary(), out=str(self.out), policy_id=None, algorithm=args.algo))
        print("edgesplit train: the guard refused the new policy (best of %d candidate(s), seed %d): %s, on the "
              "board's network in the environment with %s (%d seeds); nothing written to %s. Pass --force to write "
              "it anyway." % (len(self.candidates), self.chosen["seed"], g["reason"], self.timing(),
                              len(self.guard_seeds), self.out), file=sys.stderr)
        return REFUSED_EXIT_CODE

    def print_verdict(self) -> None:
        if self.env is None:
            return
        g = self.chosen["guard"]
        print("guard (board's network, %s, %d seeds): %s%s" % (
            self.timing(), len(self.guard_seeds), g["reason"], "; written because of --force" if not g["passed"] else ""))

    def timing(self) -> str:
        """Which timing the guard ran with: the board's, calibrated from its tasks, or the profile's (--no-calibrate)."""
        return ("the board's timing (calibrated)" if self.plan.report.get("calibration")
                else "the profile's timing (not calibrated: --no-calibrate)")
