"""The closed loop, measured: a board's SR on a network its policy was not built for, before and after the policy is
retrained from the board's own traces and reloaded on SIGHUP.

Per run (seed = run index): a fresh ``edgesplit peer`` and ``edgesplit serve`` ([emulation] board jetson_nano_cpu,
workload 112, the demo's bounds; its software link replays a --window-s window of a HELD-OUT shared recording,
scaled to the demo's mean rate) serving the shipped demo policy (planned on norway_car_3 and ghent_bus_0001);
--window-s of tasks, one every 100 ms (every second of the window once: the link repeats it); its trace database
copied off (SQLite online backup); ``edgesplit train --algo ddpg --from-traces COPY`` in the environment on the
TRAINING recordings of the same family (scaled the same way, none held out); the policy file replaced, SIGHUP;
another --window-s of tasks. With --control (default on) a third phase serves a policy trained the same way without
the board's traces (same seed), so the traces' own contribution is visible. Prints JSON: per run the SR, accuracy,
mean latency and offloads of each phase, the commands, the seeds; and the mean, std, min and max over runs.

    .venv/bin/python bench/closed_loop.py --runs 3 > bench/results/closed_loop_2026-11-30.json
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


def one_run(run: int, args, network: Path, training, workdir: Path):
    images, labels = load_heldout()
    setup = BoardSetup(recording=network)
    tasks = int(round(args.window_s / setup.period_s))
    rundir = workdir / ("run%d" % run)
    rundir.mkdir()
    served = rundir / "policy.npz"
    shutil.copyfile(str(DEMO_POLICY_FILE), str(served))
    first_id = load_policy(served).policy_id
    bounds = (setup.latency_bound_ms / 1e3, setup.energy_bound_mj)
    record = {"run": run, "seed": run, "tasks_per_phase": tasks}
    with PeerProcess(default_bundle_path()) as peer:
        board = ServedBoard(rundir / "board", setup, peer.endpoint, served)
        record["commands"] = {"peer": "edgesplit " + " ".join(peer_command(default_bundle_path())[3:]),
                              "serve": " ".join(board.command),
                              "config": board.config.read_text()}
        try:
            board.start()
            board.feed(images, labels, tasks)
            served_ids = [("before", first_id, first_id)]
            exported = rundir / "exported.db"
            record["exported"] = export_traces(board.traces, exported)
            retrained = rundir / "retrained.npz"
            summary = train(setup, TrainSetup([t for _, t in training], [exported], retrained, seed=run,
                                              epochs=args.epochs))
            record["commands"]["train"] = summary["command"]
            record["train"] = {k: summary[k] for k in ("policy_id", "offline_transitions", "tasks", "seconds")}
            phases = [("after", retrained, summary["policy_id"])]
            if args.control:
                control = rundir / "environment_only.npz"
                only = train(setup, TrainSetup([t for _, t in training], [], control, seed=run, epochs=args.epochs))
                record["commands"]["train_control"] = only["command"]
                phases.append(("control", control, only["policy_id"]))
            for name, policy, policy_id in phases:
                install_policy(policy, served)
                status = board.reload(policy_id)
                board.feed(images, labels, tasks, offset=tasks)
                served_ids.append((name, policy_id, status["policy"]["policy_id"]))
            record["daemon_exit"] = board.stop()  # commits the last batch: every phase's rows are on disk
        finally:
            board.cleanup()
    for name, policy_id, status_id in served_ids:
        record[name] = dict(phase_figures(board.traces, policy_id, *bounds), policy_id=policy_id,
                            status_policy_id=status_id)
    record["before"]["policy"] = "shipped demo policy (planner)"
    if args.control:
        record["control"]["policy"] = "trained without --from-traces, same seed and recordings"
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
    parser.add_argument("--epochs", type=int, default=1000)
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
        print("run %d: SR before %.3f after %.3f%s" % (run, runs[-1]["before"]["sr"], runs[-1]["after"]["sr"],
              " control %.3f" % runs[-1]["control"]["sr"] if args.control else ""), file=sys.stderr)
    phases = ["before", "after"] + (["control"] if args.control else [])
    summary = {phase: {key: spread([r[phase][key] for r in runs]) for key in ("sr", "accuracy", "mean_latency_ms")}
               for phase in phases}
    summary["sr_gain"] = spread([r["after"]["sr"] - r["before"]["sr"] for r in runs])
    summary["runs_improved"] = sum(r["after"]["sr"] > r["before"]["sr"] for r in runs)
    print(json.dumps({
        "bench": "closed_loop", "held_out": args.held_out, "network": window,
        "training_recordings": [name for name, _ in training], "epochs": args.epochs, "runs": runs,
        "summary": summary, "python": platform.python_version(), "seconds": round(time.time() - started, 1),
        "workdir": str(workdir)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
