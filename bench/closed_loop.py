"""The closed loop, measured: a board's SR on a network its policy was not built for, before and after the policy is
retrained from the board's own traces and reloaded on SIGHUP.

Per run (seed = run index): a fresh ``edgesplit peer`` and ``edgesplit serve`` ([emulation] board jetson_nano_cpu,
workload 112, the demo's bounds; its software link replays a --window-s window of a HELD-OUT shared recording,
scaled to the demo's mean rate) serving the shipped demo policy (planned on norway_car_3 and ghent_bus_0001);
--window-s of tasks, one every 100 ms (every second of the window once: the link repeats it); its trace database
copied off (SQLite online backup); ``edgesplit train --from-traces COPY --candidates K --force`` in the environment
on the TRAINING recordings of the same family (scaled the same way, none held out), its timing calibrated from the
copy and the board's network rebuilt from it added; train's guard scores the best candidate and the served policy
on the rebuilt network. If the guard passed it: the policy file replaced, SIGHUP, another --window-s of tasks
("after"). If it refused: "after" is the board keeping its policy (what train without --force leads to), and a
"refused" phase serves the refused policy anyway, to check the guard's call on the daemon. With --control (default
on) a last phase serves a policy trained without the board's traces (same seed, no guard). Prints JSON: per run the
SR, accuracy, mean latency and offloads of each phase, the guard's scores, the rebuilt network against the replayed
one, the commands, the seeds; and the mean, std, min and max over runs.

--board-workload-scale S serves a board slower than believed: the daemon paces its segments at S while every train
call is still told 112 (the profile the policy was planned on); train's calibration has to find S in the copy's
segment times (``speed`` per run: calibrated against served). ``bench/closed_loop_slowdown.py`` picks S by a rule.

    .venv/bin/python bench/closed_loop.py --runs 3 > bench/results/closed_loop_2026-11-30_guarded.json
"""
import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edgesplit.codegen.learning.closed_loop import (BoardSetup, ServedBoard, TrainSetup, export_traces,
                                                    install_policy, phase_figures, train,
                                                    write_recording)
from edgesplit.policies_lite import load_policy
from edgesplit.runtime.default_bundle import DEMO_POLICY_FILE, default_bundle_path, load_heldout
from edgesplit.runtime.peer.process import PeerProcess, peer_command
from edgesplit.codegen.learning import trace_split

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "traces"
FAMILY = "norway_hsdpa_3g"
# The named split's held-out 3G commutes (the board's networks; trained on the other 3G recordings).
HELD_OUT = tuple(name for name in trace_split.HELD_OUT if name.startswith("norway_hsdpa_3g/"))
DEMO_MEAN_MBPS = 0.446  # the demo's mean link rate after its scaling (bench/environment_reality.py)


def training_recordings(shared: Path, workdir: Path):
    """The family's recordings outside the held-out split, each scaled to the demo's mean rate."""
    held = {shared / name for name in HELD_OUT}
    out = []
    for path in sorted((shared / FAMILY).iterdir()):
        if path.is_file() and path.suffix != ".md" and path not in held:
            target = workdir / ("train_" + path.name + ".txt")
            write_recording(path, target, mean_mbps=DEMO_MEAN_MBPS)
            out.append((path.name, target))
    return out


def network_check(exported: Path, network: Path):
    """The board's network as train --from-traces rebuilds it from the copy, against the window the link replayed."""
    from edgesplit.codegen.learning.environment import Scenario
    from edgesplit.codegen.learning.retraining import read_board_runs, reconstruct_network, reply_bytes
    from edgesplit.runtime.default_bundle import resolve_bundle

    [run] = read_board_runs([exported])
    rebuilt, report = reconstruct_network(run, Scenario(default_bundle_path(), "jetson_nano_cpu", []),
                                          reply_bytes(resolve_bundle("default")))
    truth = np.loadtxt(str(network))[:, 1] * 1e6
    rates = np.asarray(rebuilt.rates_bps)
    error = np.abs(rates - truth[np.arange(len(rates)) % len(truth)]) / truth[np.arange(len(rates)) % len(truth)]
    report["median_abs_error"] = float(np.median(error))
    report["mean_abs_error"] = float(np.mean(error))
    return report


def speed_check(retraining, setup: BoardSetup):
    """The board's speed as train's calibration found it from the copy, against the scale the daemon served at."""
    calibration = (retraining or {}).get("calibration") or {}
    speed = calibration.get("speed")
    if speed is None:
        return {"served_workload_scale": setup.served_scale, "calibrated": None}
    return {"served_workload_scale": setup.served_scale, "believed_workload_scale": speed["believed_workload_scale"],
            "calibrated_workload_scale": speed["workload_scale"],
            "error": speed["workload_scale"] / setup.served_scale - 1.0,
            "segment_median_s": speed["segment_median_s"],
            "segment_modelled_s_calibrated": speed["segment_modelled_s"],
            "segment_modelled_s_believed": speed["segment_modelled_s_believed"]}


def guard_figures(score):
    return {k: score[k] for k in ("sr", "sr_std", "accuracy", "mean_latency_ms", "offloaded_share")}


def one_run(run: int, args, network: Path, training, workdir: Path):
    images, labels = load_heldout()
    setup = BoardSetup(recording=network, served_workload_scale=args.board_workload_scale)
    tasks = int(round(args.window_s / setup.period_s))
    rundir = workdir / ("run%d" % run)
    rundir.mkdir()
    served = rundir / "policy.npz"
    shutil.copyfile(str(DEMO_POLICY_FILE), str(served))
    first_id = load_policy(served).policy_id
    bounds = (setup.latency_bound_ms / 1e3, setup.energy_bound_mj)
    record = {"run": run, "seed": run, "tasks_per_phase": tasks}
    phase_tasks = {}
    with PeerProcess(default_bundle_path()) as peer:
        board = ServedBoard(rundir / "board", setup, peer.endpoint, served)
        record["commands"] = {"peer": "edgesplit " + " ".join(peer_command(default_bundle_path())[3:]),
                              "serve": " ".join(board.command),
                              "config": board.config.read_text()}
        try:
            board.start()
            answers = board.feed(images, labels, tasks)
            served_ids = [("before", first_id, first_id)]
            phase_tasks["before"] = [a["task_id"] for a in answers]
            exported = rundir / "exported.db"
            record["exported"] = export_traces(board.traces, exported)
            record["network_rebuilt"] = network_check(exported, network)
            retrained = rundir / "retrained.npz"
            # --force writes the best candidate even when the guard refuses it, so that the daemon can measure it too;
            # without --force train would have written nothing (exit 3) and the board would keep its policy.
            epochs = None if args.algo == "search" else args.epochs  # a search's budget is its own
            extra = ["--force"] + (["--candidates", str(args.candidates)] if args.candidates > 1 else []) + \
                list(args.train_flag)
            summary = train(setup, TrainSetup([t for _, t in training], [exported], retrained, seed=run,
                                              epochs=epochs, algo=args.algo, extra=extra))
            guard = summary["guard"]
            record["commands"]["train"] = summary["command"]
            record["train"] = {k: summary.get(k) for k in ("policy_id", "offline_transitions", "tasks", "seconds",
                                                           "policy")}
            record["train"]["retraining"] = summary["retraining"]
            record["speed"] = speed_check(summary["retraining"], setup)
            record["guard"] = {"passed": guard["passed"], "reason": guard["reason"],
                               "chosen_seed": guard["chosen_seed"],
                               "new": guard_figures(guard["new"]), "incumbent": guard_figures(guard["incumbent"]),
                               "candidates": [dict(seed=c["seed"], passed=c["guard"]["passed"],
                                                   **guard_figures(c["guard"]["new"])) for c in guard["candidates"]]}
            if guard["passed"]:
                phases = [("after", retrained, summary["policy_id"])]
            else:  # what the board does when train refuses: it keeps serving its policy
                phases = [("after", None, first_id), ("refused", retrained, summary["policy_id"])]
            if args.control:
                control = rundir / "environment_only.npz"
                only = train(setup, TrainSetup([t for _, t in training], [], control, seed=run, epochs=epochs,
                                               algo=args.algo, extra=list(args.train_flag)))
                record["commands"]["train_control"] = only["command"]
                phases.append(("control", control, only["policy_id"]))
            offset = tasks
            for name, policy, policy_id in phases:
                status_id = board.status()["policy"]["policy_id"]
                if policy is not None:
                    install_policy(policy, served)
                    status_id = board.reload(policy_id)["policy"]["policy_id"]
                answers = board.feed(images, labels, tasks, offset=offset)
                offset += tasks
                phase_tasks[name] = [a["task_id"] for a in answers]
                served_ids.append((name, policy_id, status_id))
            record["daemon_exit"] = board.stop()  # commits the last batch: every phase's rows are on disk
        finally:
            board.cleanup()
    for name, policy_id, status_id in served_ids:
        record[name] = dict(phase_figures(board.traces, policy_id, *bounds, task_ids=phase_tasks[name]),
                            policy_id=policy_id, status_policy_id=status_id)
    record["before"]["policy"] = "shipped demo policy (planner)"
    record["after"]["policy"] = ("retrained, passed the guard" if record["guard"]["passed"]
                                 else "kept: the guard refused the retrained policy")
    if "refused" in record:
        record["refused"]["policy"] = "the retrained policy the guard refused, served anyway (--force)"
    if args.control:
        record["control"]["policy"] = "trained without --from-traces, same seed and recordings, no guard"
    # The environment against the daemon: the guard's scores (calibrated environment, rebuilt network) vs real SR.
    served_new = "after" if record["guard"]["passed"] else "refused"
    record["environment_gap"] = {"incumbent": record["guard"]["incumbent"]["sr"] - record["before"]["sr"],
                                 "new": record["guard"]["new"]["sr"] - record[served_new]["sr"]}
    return record


def spread(values):
    values = np.asarray(values, dtype=float)
    return {"mean": float(values.mean()), "std": float(values.std()), "min": float(values.min()),
            "max": float(values.max())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--held-out", default=HELD_OUT[0], help="the network the board serves under (default %(default)s)")
    parser.add_argument("--start-s", type=float, default=0.0, help="where the window starts in the recording")
    parser.add_argument("--window-s", type=float, default=60.0, help="seconds of the recording, and of each phase")
    parser.add_argument("--board-workload-scale", type=float, default=112.0, metavar="S",
                        help="the daemon's [emulation] workload_scale: a board slower than the 112 its policy was "
                             "planned on and train is told (default %(default)s: as believed)")
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--algo", default="ddpg", help="train --algo (default %(default)s)")
    parser.add_argument("--candidates", type=int, default=3, help="train --candidates: policies trained per run, the "
                        "guard keeps the best (default %(default)s)")
    parser.add_argument("--train-flag", action="append", default=[], metavar="FLAG",
                        help="one more argument for every train call, e.g. --train-flag=--generations "
                             "--train-flag=6 (repeatable)")
    parser.add_argument("--no-control", dest="control", action="store_false",
                        help="skip the phase with a policy trained without the board's traces")
    parser.add_argument("--traces-dir", type=Path, default=SHARED,
                        help="the shared bandwidth recordings (default ../shared/traces beside the repository)")
    args = parser.parse_args()
    if args.held_out not in HELD_OUT:
        parser.error("--held-out must be one of %s (the training recordings are the others)" % ", ".join(HELD_OUT))
    started = time.time()
    workdir = Path(tempfile.mkdtemp(prefix="closed-loop-"))
    network = workdir / "network.txt"
    window = write_recording(args.traces_dir / args.held_out, network, mean_mbps=DEMO_MEAN_MBPS,
                             start_s=args.start_s, seconds=args.window_s)
    training = training_recordings(args.traces_dir, workdir)
    runs = []
    for run in range(args.runs):
        runs.append(one_run(run, args, network, training, workdir))
        print("run %d: SR before %.3f after %.3f (guard %s)%s%s; board scale %g, calibrated %s" % (
            run, runs[-1]["before"]["sr"], runs[-1]["after"]["sr"], "passed" if runs[-1]["guard"]["passed"] else
            "refused", " refused-served %.3f" % runs[-1]["refused"]["sr"] if "refused" in runs[-1] else "",
            " control %.3f" % runs[-1]["control"]["sr"] if args.control else "", args.board_workload_scale,
            "%.1f" % runs[-1]["speed"]["calibrated_workload_scale"] if "calibrated_workload_scale" in runs[-1]["speed"]
            else "-"), file=sys.stderr)
    phases = ["before", "after"] + (["refused"] if any("refused" in r for r in runs) else []) + (
        ["control"] if args.control else [])
    summary = {phase: {key: spread([r[phase][key] for r in runs if phase in r])
                       for key in ("sr", "accuracy", "mean_latency_ms")} for phase in phases}
    summary["guard_passed"] = sum(r["guard"]["passed"] for r in runs)
    summary["environment_gap"] = {k: spread([r["environment_gap"][k] for r in runs]) for k in ("incumbent", "new")}
    summary["sr_gain"] = spread([r["after"]["sr"] - r["before"]["sr"] for r in runs])
    summary["runs_improved"] = sum(r["after"]["sr"] > r["before"]["sr"] for r in runs)
    scales = [r["speed"]["calibrated_workload_scale"] for r in runs if "calibrated_workload_scale" in r["speed"]]
    summary["calibrated_workload_scale"] = spread(scales) if scales else None
    print(json.dumps({
        "bench": "closed_loop", "held_out": args.held_out, "network": window,
        "board_workload_scale": args.board_workload_scale, "believed_workload_scale": BoardSetup(network).workload_scale,
        "training_recordings": [name for name, _ in training], "epochs": args.epochs, "algo": args.algo,
        "candidates": args.candidates, "runs": runs,
        "summary": summary, "python": platform.python_version(), "seconds": round(time.time() - started, 1),
        "workdir": str(workdir)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
