"""The runtime's bandwidth estimate against the rate its software link replays, on the real daemon.

Per code version (this tree, "after"; each --version NAME=TREE also runs the daemon of another source tree, a git
worktree, by putting that tree's folders ahead of the installed package) and per strategy (``offload``: every task
shipped at cut 0; ``local``: every task on the board; ``policy``: the shipped planner policy; ``mixed``: confident
tasks stop at exit 0 on the board, the rest go at cut 1, on a faster link): a real ``edgesplit peer`` and
``edgesplit serve`` ([emulation] board jetson_nano_cpu, workload 112, a software link replaying a --window-s window
of a held-out recording scaled to the closed loop's 0.446 Mbit/s mean, 20 ms RTT: codegen/learning/closed_loop.py's
settings), one task every 100 ms through the local API. Each task's trace row carries the estimate the controller
read for it; the replayed rate is the link's at the task's submission (the link's start is read from the daemon's
"link listening" log line; both are the host's wall clock, to the millisecond). Also the virtual-time environment
(codegen/learning/environment.py) on the same window, board and strategy with that tree's estimator. Prints JSON:
per version and strategy, estimate / replayed rate per second (the median estimate of the second's tasks over the
second's rate) and per task (median, quartiles, 5th and 95th percentiles), the distinct estimates the controller
saw, offloads and fallbacks; the same for the environment.

    git worktree add /tmp/before <commit before>
    .venv/bin/python bench/estimator_daemon.py --recording ../shared/traces/norway_hsdpa_3g/norway_ferry_3 \
        --window-s 30 --version before=/tmp/before
"""
import argparse
import contextlib
import json
import os
import platform
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edgesplit.codegen.learning.closed_loop import BoardSetup, ServedBoard, daemon_config, write_recording
from edgesplit.runtime.default_bundle import DEMO_POLICY_FILE, default_bundle_path, load_heldout, resolve_bundle
from edgesplit.runtime.emulation.link.recording_readers import read_recording
from edgesplit.runtime.peer.process import PeerProcess

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "traces"
DEFAULT_RECORDING = SHARED / "norway_hsdpa_3g" / "norway_ferry_3"
DEMO_MEAN_MBPS = 0.446
FOLDERS = ("runtime", "codegen", "policies_lite", "board_configs")
# strategy -> ([action] cut or None for the shipped planner policy, the window's mean rate / --mean-mbps).
# "mixed": confident tasks stop at exit 0 on the board, the rest go to the peer at cut 1 (about 1 in 5), on the window
# scaled to 6 Mbit/s (at the default --mean-mbps), where cut 1's 12.5 KB fit the deadline after the board's compute:
# the board offloads some tasks and not others, as the planner policy does when it picks a deeper cut.
STRATEGIES = {"offload": (0, 1.0), "local": (-1, 1.0), "policy": (None, 1.0), "mixed": (1, 6.0 / DEMO_MEAN_MBPS)}
LINK_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) INFO \S+relay: link listening on")


def config_text(setup: BoardSetup, peer: str, strategy: str, board: ServedBoard) -> str:
    """closed_loop's daemon config, with the strategy's [model] policy or [action] cut."""
    text = daemon_config(setup, peer, DEMO_POLICY_FILE, board.traces, board.socket)
    cut = STRATEGIES[strategy][0]
    if cut is not None:
        text = text.replace('policy = "%s"' % DEMO_POLICY_FILE, 'policy = ""')
        text += "[action]\ncut = %d\n" % cut
    return text


def link_started_at(log_text: str) -> float:
    """The wall-clock time (epoch seconds) of the daemon's "link listening" line (asctime is local time)."""
    for line in log_text.splitlines():
        match = LINK_LINE.match(line)
        if match:
            return time.mktime(time.strptime(match.group(1), "%Y-%m-%d %H:%M:%S")) + int(match.group(2)) / 1e3
    raise RuntimeError("no 'link listening' line in the daemon's log:\n%s" % log_text)


def ratios(rows, link_start: float, recording) -> dict:
    """rows: (arrival wall time, estimate bps, cut, fallback) per task -> ratio figures."""
    step = recording.step_s
    rates = np.asarray(recording.bps, dtype=float)
    per_task, per_second = [], {}
    for wall, estimate, _, _ in rows:
        index = int(np.floor((wall - link_start) / step))
        true = rates[index % len(rates)]
        if estimate and true > 0:
            per_task.append(estimate / true)
            per_second.setdefault(index, ([], true))[0].append(estimate)
    seconds = [float(np.median(values)) / true for values, true in per_second.values()]

    def quartiles(values):
        if not values:
            return None
        q = np.percentile(values, [5, 25, 50, 75, 95])
        return {"p5": q[0], "q1": q[1], "median": q[2], "q3": q[3], "p95": q[4], "n": len(values)}

    return {"per_second": quartiles(seconds), "per_task": quartiles(per_task)}


@contextlib.contextmanager
def imported_from(tree, env: dict):
    """``env`` makes a child process import ``edgesplit`` from the source ``tree`` (None: as installed)."""
    with tempfile.TemporaryDirectory() as shadow:
        if tree is not None:
            package = Path(shadow) / "edgesplit"
            package.mkdir()
            for folder in FOLDERS:
                os.symlink(str(tree.resolve() / folder), str(package / folder))
            env["PYTHONPATH"] = shadow
        yield


def real_phase(tree, strategy: str, setup: BoardSetup, tasks: int, workdir: Path) -> dict:
    images, labels = load_heldout()
    env = {k: v for k, v in os.environ.items() if k not in ("JOURNAL_STREAM", "INVOCATION_ID")}
    with imported_from(tree, env):
        with PeerProcess(default_bundle_path()) as peer:
            board = ServedBoard(workdir, setup, peer.endpoint, Path(""), env=env)
            board.config.write_text(config_text(setup, peer.endpoint, strategy, board))
            board.start()
            try:
                submitted = {}
                origin = time.perf_counter()
                answers = []
                from edgesplit.runtime.api.client import ApiClient
                with ApiClient(str(board.socket), timeout_s=10.0) as client:
                    for i in range(tasks):
                        time.sleep(max(0.0, origin + i * setup.period_s - time.perf_counter()))
                        k = i % len(images)
                        wall = time.time()
                        answer = client.submit(images[k:k + 1], label=int(labels[k])).to_dict()
                        submitted[answer["task_id"]] = wall
                        answers.append(answer)
            finally:
                board.stop()
        log_text = board.log.read_text()
    with sqlite3.connect(str(board.traces)) as db:
        found = db.execute("SELECT task_id, bandwidth_bps, cut, fallback FROM tasks ORDER BY task_id").fetchall()
    rows = [(submitted[t], bw, cut, fb) for t, bw, cut, fb in found if t in submitted]
    estimates = [bw for _, bw, _, _ in rows if bw]
    figures = ratios(rows, link_started_at(log_text), read_recording(setup.recording))
    figures.update(tasks=len(rows), offloaded=sum(1 for r in rows if r[2] is not None),
                   fallbacks=sum(1 for r in rows if r[3]), distinct_estimates=len(set(estimates)),
                   estimate_mbps_median=float(np.median(estimates)) / 1e6 if estimates else None)
    return figures


def environment_phase(strategy: str, setup: BoardSetup, tasks: int, seeds: int) -> dict:
    """The same scenario in the virtual-time environment, with this tree's estimator."""
    from edgesplit.codegen.learning.environment import Environment, Scenario
    from edgesplit.runtime.controller.strategies import fixed, load_policy_strategy

    scenario = Scenario(default_bundle_path(), setup.board, [setup.recording], link_scale=setup.link_scale,
                        rtt_s=setup.rtt_ms / 1e3, workload_scale=setup.workload_scale,
                        latency_bound_s=setup.latency_bound_ms / 1e3, energy_bound=setup.energy_bound_mj,
                        period_s=setup.period_s, episode_tasks=tasks, draw="sequential")
    env = Environment(scenario)
    cut = STRATEGIES[strategy][0]
    if cut is None:
        chosen = load_policy_strategy(str(DEMO_POLICY_FILE), env.n_exits, env.n_cuts)
    else:  # the daemon's [action] cut with the bundle's default thresholds
        defaults = [e.threshold for e in resolve_bundle("default").manifest.exits][:env.n_exits]
        chosen = fixed(strategy, env.n_cuts - 1 if cut < 0 else cut, defaults, use_exits=cut != 0)
    per_second, per_task, offloaded, distinct = [], [], 0, 0
    for seed in range(seeds):
        episode = env.run(chosen, seed=seed)
        est, true, at = (episode.per_task[k] for k in ("estimate_bps", "bandwidth_bps", "time_s"))
        ok = (est > 0) & (true > 0)
        per_task += list(est[ok] / true[ok])
        seconds = np.floor(at[ok]).astype(int)  # the recording's 1-s steps
        for s in np.unique(seconds):
            mask = seconds == s
            per_second.append(float(np.median(est[ok][mask])) / float(np.median(true[ok][mask])))
        offloaded += int(episode.per_task["offloaded"].sum())
        distinct += len(set(est[ok].tolist()))
    q = lambda v: None if not v else dict(zip(("p5", "q1", "median", "q3", "p95"),  # noqa: E731
                                              np.percentile(v, [5, 25, 50, 75, 95]).tolist()), n=len(v))
    return {"per_second": q(per_second), "per_task": q(per_task), "offloaded_per_episode": offloaded / seeds,
            "distinct_estimates_per_episode": distinct / seeds, "seeds": seeds}


def run_environment(tree, strategy, setup, tasks, seeds) -> dict:
    """environment_phase in a subprocess that imports ``edgesplit`` from ``tree`` (None: as installed)."""
    env = dict(os.environ)
    with imported_from(tree, env):
        done = subprocess.run([sys.executable, __file__, "--environment-only", strategy, "--recording-file",
                               str(setup.recording), "--tasks", str(tasks), "--seeds", str(seeds)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    if done.returncode != 0:  # an old tree may predate the environment
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "exit %d" % done.returncode}
    return json.loads(done.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="append", default=[], metavar="NAME=TREE",
                        help="also run the daemon (and environment) of another source tree, e.g. "
                             "before=/tmp/before (a git worktree of the commit before); repeatable")
    parser.add_argument("--recording", type=Path, default=DEFAULT_RECORDING)
    parser.add_argument("--start-s", type=float, default=0.0, help="the window's start in the recording")
    parser.add_argument("--window-s", type=float, default=60.0, help="the window's length = each phase's length")
    parser.add_argument("--strategies", default=",".join(STRATEGIES), help="comma-separated, of %(default)s")
    parser.add_argument("--mean-mbps", type=float, default=DEMO_MEAN_MBPS,
                        help="the window's mean rate after scaling (default %(default)s, the closed loop's)")
    parser.add_argument("--seeds", type=int, default=3, help="environment seeds per case")
    parser.add_argument("--environment-only", help=argparse.SUPPRESS)
    parser.add_argument("--recording-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--tasks", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.environment_only:
        setup = BoardSetup(recording=args.recording_file)
        print(json.dumps(environment_phase(args.environment_only, setup, args.tasks, args.seeds)))
        return 0
    started = time.time()
    workdir = Path(tempfile.mkdtemp(prefix="estimator-daemon-"))
    strategies = args.strategies.split(",")
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        raise SystemExit("unknown strategies %s: choose from %s" % (unknown, ", ".join(STRATEGIES)))
    windows = {}
    for factor in sorted({STRATEGIES[s][1] for s in strategies}):
        path = workdir / ("window_x%g.txt" % factor)
        windows[factor] = (path, write_recording(args.recording, path, mean_mbps=args.mean_mbps * factor,
                                                 start_s=args.start_s, seconds=args.window_s))
    period_s = BoardSetup(recording=Path()).period_s
    tasks = int(round(args.window_s / period_s))
    versions = [("after", None)] + [(v.split("=", 1)[0], Path(v.split("=", 1)[1])) for v in args.version]
    result = {"bench": "estimator_daemon", "windows": {str(k): v[1] for k, v in windows.items()},
              "tasks_per_phase": tasks, "setup": {k: str(v) for k, v in vars(BoardSetup(recording=Path())).items()
                                                  if k != "recording"},
              "strategies": {s: {"cut": STRATEGIES[s][0], "mean_mbps": args.mean_mbps * STRATEGIES[s][1]}
                             for s in strategies},
              "python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
              "host": platform.node(), "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime(started)),
              "versions": {}}
    for name, tree in versions:
        rows = {}
        for strategy in strategies:
            setup = BoardSetup(recording=windows[STRATEGIES[strategy][1]][0])
            real = real_phase(tree, strategy, setup, tasks, workdir / name / strategy)
            environment = run_environment(tree, strategy, setup, tasks, args.seeds)
            rows[strategy] = {"daemon": real, "environment": environment}
            print("%s %s: daemon per-second median %s, environment %s" % (
                name, strategy, real["per_second"] and round(real["per_second"]["median"], 2),
                environment.get("per_second") and round(environment["per_second"]["median"], 2)),
                file=sys.stderr, flush=True)
        commit = subprocess.run(["git", "-C", str(tree or Path(__file__).resolve().parent), "rev-parse", "--short",
                                 "HEAD"], stdout=subprocess.PIPE, universal_newlines=True).stdout.strip()
        result["versions"][name] = {"tree": str(tree) if tree else "this tree", "commit": commit, "strategies": rows}
    result["seconds"] = round(time.time() - started, 1)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
