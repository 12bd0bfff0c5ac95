"""Live model selection: a real daemon serving three real variants, a client rating results late and noisily.

    python bench/bandit_live.py [--tasks 600] [--boards jetson_nano,rpi4] [--seed 0] [--out r.json] [--plot r.png]
    python bench/bandit_live.py --plot-from run1.json run2.json ... --plot out.png

For each emulated board (the [emulation] table of its board_configs/NAME.toml): starts ``edgesplit serve`` with
``[model] variants`` = fp32 (the embedded bundle with its early exits), small (its first exit as the whole
model) and noexit (the same model with the exits off), ``selector = "linucb"``; submits held-out MNIST
images one every ``--period-ms``; rates each result ``d`` tasks later (d uniform in 1..40) with a QoE that
mixes correctness and the latency a user of that board would see, plus noise of variance
``lambda_eta + lambda_v / d^2``, as the seed paper's simulation does.

The board enters through the client's QoE only: the latency of a result on board B is the MACs of the path
it took (up to the exit the daemon reports) x ``--workload-scale`` / B's MACs per second (the emulator's
MACs model). The daemon itself runs on this machine, so its latency context feature is this machine's.
The expected QoE of every variant on each board is computed first from the same images (the ground
truth: which arm is best); the run reports the share of tasks on that arm per window of tasks.
Prints one JSON document.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edgesplit.runtime.api.client import ApiClient
from edgesplit.runtime.emulation.board import load_emulated_board

ARMS = ("fp32", "small", "noexit")


def board_latency_s(macs: float, profile, workload_scale: float) -> float:
    return macs * workload_scale / profile.macs_per_s


def qoe(correct: bool, latency_s: float, args) -> float:
    return float(correct) - args.latency_weight * latency_s / args.latency_bound_s


def ground_truth(bundles, images, labels, profile, args):
    """Expected QoE of every variant on this board: each held-out image through the variant's own runtime."""
    from edgesplit.runtime.executor.executor import Executor

    truth = {}
    for name, bundle in bundles.items():
        executor = Executor(bundle, threads=1)
        values = []
        for image, label in zip(images, labels):
            out = executor.run({bundle.manifest.inputs[0].name: image[None]},
                               thresholds=list(executor.default_thresholds))
            macs = bundle.manifest.exits[out.exit_id].macs
            values.append(qoe(int(np.argmax(out.output.reshape(-1))) == label,
                              board_latency_s(macs, profile, args.workload_scale), args))
        truth[name] = float(np.mean(values))
    return truth


def start_daemon(workdir: Path, bundles, args):
    sockdir = Path(tempfile.mkdtemp(prefix="es-", dir="/tmp"))
    config = workdir / "edgesplit.toml"
    config.write_text(
        '[model]\nboard = "x86_cpu"\nselector = "linucb"\nvariants = [%s]\n'
        '[linucb]\nstate = "%s"\nlambda_eta = %r\nlambda_v_scale = %r\ndelay_unit_s = %r\n'
        '[traces]\npath = "%s"\n[api]\nsocket = "%s"\nqueue_size = 64\n'
        % (", ".join('"%s"' % bundles[n].root for n in ARMS), workdir / "linucb.json", args.lambda_eta,
           args.lambda_v, args.period_ms / 1e3, workdir / "traces.db", sockdir / "api.sock"))
    log = open(str(workdir / "daemon.log"), "ab")
    process = subprocess.Popen([sys.executable, "-m", "edgesplit.runtime.cli", "serve", "--config", str(config)],
                               stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("daemon exited: %s" % (workdir / "daemon.log").read_text())
        if (sockdir / "api.sock").exists():
            with ApiClient(str(sockdir / "api.sock"), timeout_s=1.0) as client:
                if client.ping():
                    return process, sockdir, log
        time.sleep(0.05)
    process.kill()
    raise SystemExit("daemon did not start")


def run_board(board: str, bundles, images, labels, args, rng):
    profile = load_emulated_board(board)
    truth = ground_truth(bundles, images, labels, profile, args)
    best = max(truth, key=truth.get)
    workdir = Path(tempfile.mkdtemp(prefix="bandit-live-%s-" % board))
    process, sockdir, log = start_daemon(workdir, bundles, args)
    arms, due = [], []  # due: (task index at which to rate, task id, rating)
    try:
        with ApiClient(str(sockdir / "api.sock"), timeout_s=10.0) as api:
            start = time.perf_counter()
            for t in range(args.tasks):
                for item in [d for d in due if d[0] <= t]:
                    due.remove(item)
                    api.feedback(item[1], rating=item[2])
                i = int(rng.integers(len(labels)))
                answer = api.submit(images[i][None], deadline_ms=2000)
                if not answer.ok:
                    raise SystemExit("task refused: %s" % (answer,))
                arms.append(answer.arm)
                macs = bundles[answer.arm].manifest.exits[answer.exit].macs
                value = qoe(answer.result == labels[i], board_latency_s(macs, profile, args.workload_scale), args)
                delay = int(rng.integers(1, args.max_delay + 1))
                noise = rng.normal(0.0, np.sqrt(args.lambda_eta + args.lambda_v / delay ** 2))
                due.append((t + delay, answer.task_id, value + noise))
                time.sleep(max(0.0, start + (t + 1) * args.period_ms / 1e3 - time.perf_counter()))
            status = api.status()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        log.close()
        shutil.rmtree(str(sockdir), ignore_errors=True)
    window = args.window
    shares = [round(arms[k:k + window].count(best) / len(arms[k:k + window]), 3) for k in range(0, len(arms), window)]
    selector = status["selector"]
    result = {"board": board, "board_macs_per_s": profile.macs_per_s, "expected_qoe": truth, "best_arm": best,
              "share_of_best_per_window": shares, "window_tasks": window,
              "share_of_best_last_quarter": round(arms[-len(arms) // 4:].count(best) / (len(arms) // 4), 3),
              "counts": {a: arms.count(a) for a in ARMS}, "ratings": selector["ratings"],
              "estimates": {a["name"]: a["estimate"] for a in selector["arms"]},
              "learner_estimate_best": max(selector["arms"], key=lambda a: a["estimate"])["name"],
              "workdir": str(workdir)}
    if not args.keep:
        shutil.rmtree(str(workdir), ignore_errors=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=600)
    parser.add_argument("--boards", default="jetson_nano,rpi4")
    parser.add_argument("--period-ms", type=float, default=20.0, help="one task every this long (one round)")
    parser.add_argument("--max-delay", type=int, default=40, help="ratings come 1..this many tasks later")
    parser.add_argument("--lambda-eta", type=float, default=0.02, help="rating noise variance")
    parser.add_argument("--lambda-v", type=float, default=0.5, help="plus this / delay^2")
    parser.add_argument("--workload-scale", type=float, default=100.0, help="MACs multiplier of the board latency")
    parser.add_argument("--latency-bound-ms", type=float, default=100.0)
    parser.add_argument("--latency-weight", type=float, default=1.0, help="QoE = correct - weight x latency/bound")
    parser.add_argument("--window", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep each board's work folder (traces, state, log)")
    parser.add_argument("--out", help="also write the JSON here")
    parser.add_argument("--plot", metavar="OUT.png", help="draw the share of the best arm over time (matplotlib)")
    parser.add_argument("--plot-from", nargs="+", metavar="JSON", help="only draw --plot from earlier --out files")
    args = parser.parse_args()
    if args.plot_from:
        from edgesplit.codegen.bandit_plot import plot_live_shares

        plot_live_shares([json.loads(Path(p).read_text()) for p in args.plot_from], Path(args.plot))
        return 0
    args.latency_bound_s = args.latency_bound_ms / 1e3
    from edgesplit.codegen.variants import build_default_variants
    from edgesplit.runtime.default_bundle import load_heldout

    images, labels = load_heldout()
    build_dir = Path(tempfile.mkdtemp(prefix="bandit-variants-"))
    try:
        built = build_default_variants(build_dir, images, labels)
        bundles = {name: built[name] for name in ARMS}
        rng = np.random.default_rng(args.seed)
        params = {k: v for k, v in vars(args).items() if k not in ("out", "plot", "plot_from")}
        report = {"benchmark": "bandit_live", "args": params,
                  "variants": {n: {"accuracy_with_defaults": b.manifest.provenance["thresholds"]
                                   ["test_accuracy_with_defaults"], "macs": b.manifest.exits[-1].macs}
                               for n, b in bundles.items()},
                  "boards": [run_board(board, bundles, images, labels, args, rng) for board in args.boards.split(",")]}
    finally:
        shutil.rmtree(str(build_dir), ignore_errors=True)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    if args.plot:
        from edgesplit.codegen.bandit_plot import plot_live_shares

        plot_live_shares([report], Path(args.plot))
    return 0


if __name__ == "__main__":
    sys.exit(main())
