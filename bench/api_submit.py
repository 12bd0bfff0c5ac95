"""What the daemon's local API costs per task: one-image submits through a real daemon vs in-process.

Starts a real ``edgesplit serve --local DIR`` daemon (embedded MNIST bundle, detected board, every
task local, trace store on), waits for its API socket, then in one run alternates rounds of

- ``api_submit``: ``ApiClient.submit(image)`` as applications call it (the daemon's plain Unix
  stream endpoint, ``api.sock.plain``), answered ``ok`` (the daemon runs the task through its device
  loop: controller, executor with exits, trace row);
- ``api_submit_zmq``: the same through the ZeroMQ ipc socket (``ApiClient(transport="zmq")``: what
  every submit took before the plain endpoint, and what other ZeroMQ clients get);
- ``executor_in_process``: ``Executor.run(image)`` in this process on the same bundle, the same
  images in the same order, the bundle's default exit thresholds (what the daemon's static action
  uses);

rotating which goes first (and, after the rounds, ``--tail-calls`` single calls of each submit row timed one by
one in blocks of 100 back-to-back calls: percentiles of one call's wall time, where a tail shows). Reported: microseconds per call (median and minimum over rounds) and the
ratio api / in-process per round (median) and of the minimums. The acceptance is a ratio <= 3.
- ``api_submit_many``: ``ApiClient.submit_many`` of ``--batch`` images at a time (its default window),
  reported per image: one task each, as many round trips as windows;
- ``api_submit_spin``: ``ApiClient(spin_us=--spin-us).submit``: the client looks for its answer without
  sleeping first; ``api_submit_daemon_spin`` and ``api_submit_both_spin``: a plain and a spinning client
  of a second daemon, started with ``[api] spin_us = --daemon-spin-us`` (its connection threads look for
  the next request before sleeping); the default daemon's config is left as it is;

A ``ping`` round trip (no model work) is measured too, on both endpoints, to separate the socket from
the task.

Wall time on a busy machine is mostly waiting for a core: every hop between processes and threads
is a wake-up. So the CPU each configuration used is reported too (this process's CPU time plus the
daemon's, every thread, from /proc/PID/task/*/schedstat), per call and as a ratio: what a submit
costs a board that runs nothing else; and per thread (``/proc/PID/task/TID/comm``: the daemon names
its API and serving threads; its trace writer process is counted as "daemon-child:es-trace-writer"),
where a configuration's microseconds go. Prints one JSON document.

    .venv/bin/python bench/api_submit.py [--rounds 30] [--calls 100] [--spin-us 500] [--daemon-spin-us 300]
"""
import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Sequence

import numpy as np

from edgesplit.runtime.api import ApiClient
from edgesplit.runtime.bundle.store import load_bundle
from edgesplit.runtime.daemon.local import local_config
from edgesplit.runtime.default_bundle import default_bundle_path
from edgesplit.runtime.executor.executor import Executor
from timing import paired_ratio

TARGET_RATIO = 3.0
ASSETS = Path(__file__).resolve().parents[1] / "runtime" / "assets" / "mnist_heldout.npz"


def edgesplit_command() -> List[str]:
    found = shutil.which("edgesplit", path=os.path.dirname(sys.executable))
    return [found] if found else [sys.executable, "-m", "edgesplit.runtime.cli"]


def start_daemon(folder: Path, timeout_s: float = 60.0, spin_us: float = 0.0,
                 trace_batch_size: int = 0) -> subprocess.Popen:
    """``edgesplit serve --local folder``; ``spin_us``: its ``[api] spin_us``, ``trace_batch_size``: its
    ``[traces] batch_size`` (0: the default config's)."""
    folder.mkdir(parents=True, exist_ok=True)
    if spin_us or trace_batch_size:
        config = Path(local_config(str(folder)))
        text = config.read_text()
        if spin_us:
            text = text.replace("[api]\n", "[api]\nspin_us = %r\n" % float(spin_us), 1)
        if trace_batch_size:
            text = text.replace("[traces]\n", "[traces]\nbatch_size = %d\n" % trace_batch_size, 1)
        config.write_text(text)
    log = open(str(folder / "daemon.log"), "wb")
    proc = subprocess.Popen(edgesplit_command() + ["serve", "--local", str(folder)], stdout=log,
                            stderr=subprocess.STDOUT)
    socket_path = folder / "api.sock"
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit("the daemon exited (%s) before serving: see %s" % (proc.returncode, folder / "daemon.log"))
        if socket_path.exists():
            with ApiClient(str(socket_path), timeout_s=1.0) as api:
                if api.ping():
                    return proc
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("the daemon did not answer within %.0f s: see %s" % (timeout_s, folder / "daemon.log"))


def stop_daemon(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def thread_cpu(pid: int, who: str) -> Dict[str, float]:
    """CPU seconds of every thread of ``pid`` (schedstat: nanoseconds on a core) by "who:comm:tid"."""
    seconds = {}  # type: Dict[str, float]
    folder = "/proc/%d/task" % pid
    for task in os.listdir(folder):
        try:
            with open(os.path.join(folder, task, "schedstat")) as handle:
                used = int(handle.read().split()[0]) / 1e9
            with open(os.path.join(folder, task, "comm")) as handle:
                name = handle.read().strip()
        except (OSError, IndexError, ValueError):
            continue  # a thread that ended meanwhile
        seconds["%s:%s:%s" % (who, name, task)] = used
    return seconds


def children(pid: int) -> List[int]:
    """The processes ``pid`` started (the daemon's trace writer process), from /proc (Linux >= 3.5)."""
    found = []  # type: List[int]
    folder = "/proc/%d/task" % pid
    for task in os.listdir(folder):  # each thread's children are listed under that thread
        try:
            with open(os.path.join(folder, task, "children")) as handle:
                found += [int(child) for child in handle.read().split()]
        except (OSError, ValueError):
            continue
    return found


def all_thread_cpu(daemon_pids: Sequence[int]) -> Dict[str, float]:
    """The bench's threads, each daemon's ("daemon", then "daemon2"), and those of their child processes
    (their trace writers)."""
    seconds = thread_cpu(os.getpid(), "bench")
    for number, pid in enumerate(daemon_pids):
        who = "daemon%s" % (number + 1 if number else "")
        seconds.update(thread_cpu(pid, who))
        for child in children(pid):
            try:
                seconds.update(thread_cpu(child, who + "-child"))
            except OSError:  # it ended meanwhile
                pass
    return seconds


def per_call(fn: Callable[[int], object], calls: int, offset: int, cpu: Dict[str, Dict[str, float]], name: str,
             daemon_pids: Sequence[int]) -> float:
    before = all_thread_cpu(daemon_pids)
    start = time.perf_counter()
    for i in range(calls):
        fn(offset + i)
    elapsed = time.perf_counter() - start
    after = all_thread_cpu(daemon_pids)
    spent = cpu.setdefault(name, {})
    for thread, seconds in after.items():
        spent[thread] = spent.get(thread, 0.0) + seconds - before.get(thread, 0.0)
    return elapsed / calls


def interleaved(fns: Dict[str, Callable[[int], object]], rounds: int, calls: int, daemon_pids: Sequence[int]):
    """(per-call seconds per round, CPU seconds per thread) of each configuration."""
    names = list(fns)
    for name in names:
        per_call(fns[name], calls, 0, {}, name, daemon_pids)  # warm-up, not counted
    samples = {name: [] for name in names}  # type: Dict[str, List[float]]
    cpu = {}  # type: Dict[str, Dict[str, float]]
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            samples[name].append(per_call(fns[name], calls, r * calls, cpu, name, daemon_pids))
    return samples, cpu


def tails(fns: Dict[str, Callable[[int], object]], names: Sequence[str], calls: int) -> Dict[str, Dict[str, float]]:
    """Wall microseconds of single calls (percentiles), each timed alone within blocks of 100 back-to-back
    calls of one configuration (the closed loop the rounds measure); the configurations alternate by block."""
    taken = {name: [] for name in names}  # type: Dict[str, List[float]]
    clock = time.perf_counter
    for block in range(0, calls, 100):
        for name in names:
            fn, spent = fns[name], taken[name]
            for i in range(block, min(calls, block + 100)):
                start = clock()
                fn(i)
                spent.append(clock() - start)
    out = {}
    for name, values in taken.items():
        values.sort()
        out[name] = {"p%d" % q: round(1e6 * values[min(len(values) - 1, int(q / 100.0 * len(values)))], 1)
                     for q in (50, 90, 95, 99)}
        out[name]["mean"] = round(1e6 * statistics.mean(values), 1)
    return out


def busy_threads(spent: Dict[str, float], calls: int, floor_us: float = 1.0) -> Dict[str, float]:
    """Microseconds per call of each thread that used at least ``floor_us``, busiest first; the
    bench's own threads and the daemon's are named "bench:COMM:TID" and "daemon:COMM:TID"."""
    per_call_us = {thread: 1e6 * seconds / calls for thread, seconds in spent.items()}
    return {thread: round(us, 1) for thread, us in sorted(per_call_us.items(), key=lambda kv: -kv[1])
            if us >= floor_us}



def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30, help="interleaved rounds")
    parser.add_argument("--calls", type=int, default=100, help="calls per configuration per round")
    parser.add_argument("--batch", type=int, default=10, help="images per submit_many (divides --calls)")
    parser.add_argument("--spin-us", type=float, default=500.0,
                        help="ApiClient(spin_us=...) of the api_submit_spin and api_ping_spin rows")
    parser.add_argument("--daemon-spin-us", type=float, default=300.0,
                        help="a second daemon with this [api] spin_us serves the api_*_daemon_spin and "
                             "api_*_both_spin rows (0: no second daemon)")
    parser.add_argument("--trace-batch-size", type=int, default=0,
                        help="both daemons' [traces] batch_size (0: the default, 64): rows handed to the trace "
                             "writer per half batch, and what a power cut may lose")
    parser.add_argument("--tail-calls", type=int, default=2000,
                        help="single submits timed one by one per row, for percentiles (after the rounds)")
    args = parser.parse_args(argv)
    if args.calls % args.batch:
        parser.error("--batch must divide --calls")

    images = np.load(str(ASSETS))["images"]
    executor = Executor(load_bundle(default_bundle_path()))
    work = Path(tempfile.mkdtemp(prefix="edgesplit-api-bench-"))
    daemons = [start_daemon(work / "default", trace_batch_size=args.trace_batch_size)]
    if args.daemon_spin_us:
        daemons.append(start_daemon(work / "spinning", spin_us=args.daemon_spin_us,
                                    trace_batch_size=args.trace_batch_size))
    answers = {"ok": 0, "other": 0}
    try:
        with contextlib.ExitStack() as clients:
            def client(folder: str, **options) -> ApiClient:
                return clients.enter_context(ApiClient(str(work / folder / "api.sock"), timeout_s=10.0, **options))

            api, api_zmq, api_spin = client("default"), client("default", transport="zmq"), \
                client("default", spin_us=args.spin_us)

            def submitter(target: ApiClient) -> Callable[[int], None]:
                def submit(i: int) -> None:
                    answer = target.submit(images[i % len(images)][None])
                    answers["ok" if answer.ok else "other"] += 1
                return submit

            def submit_many(i: int) -> None:
                if i % args.batch == 0:  # one batch per --batch calls: the per-call figures are per image
                    rows = np.take(images, range(i, i + args.batch), axis=0, mode="wrap")
                    for answer in api.submit_many(rows):
                        answers["ok" if answer.ok else "other"] += 1

            fns = {"api_submit": submitter(api),
                   "api_submit_spin": submitter(api_spin),
                   "api_submit_many": submit_many,
                   "api_submit_zmq": submitter(api_zmq),
                   "executor_in_process": lambda i: executor.run(images[i % len(images)][None]),
                   "api_ping": lambda i: api.ping(),
                   "api_ping_zmq": lambda i: api_zmq.ping(),
                   "api_ping_spin": lambda i: api_spin.ping()}
            if args.daemon_spin_us:
                to_spinning, both = client("spinning"), client("spinning", spin_us=args.spin_us)
                fns.update({"api_submit_daemon_spin": submitter(to_spinning),
                            "api_submit_both_spin": submitter(both),
                            "api_ping_both_spin": lambda i: both.ping()})
            samples, cpu = interleaved(fns, args.rounds, args.calls, [d.pid for d in daemons])
            singles = tails(fns, [name for name in fns if name.startswith("api_submit") and name != "api_submit_many"]
                            + ["executor_in_process"], args.tail_calls)
            tasks = sum(target.status().get("tasks", {}).get("ok", 0) for target in [api] + (
                [to_spinning] if args.daemon_spin_us else []))
            transport = api.transport
    finally:
        codes = [stop_daemon(d) for d in daemons]
    shutil.rmtree(str(work), ignore_errors=True)
    calls = args.rounds * args.calls
    cpu_total = {name: sum(spent.values()) for name, spent in cpu.items()}
    submits = [name for name in fns if name.startswith("api_")]
    ratios = {name: paired_ratio(samples, name, "executor_in_process") for name in submits}
    print(json.dumps({
        "bench": "api_submit",
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "rounds": args.rounds,
        "calls_per_round": args.calls,
        "us_per_call": {name: {"median": round(1e6 * statistics.median(v), 1), "min": round(1e6 * min(v), 1)}
                        for name, v in samples.items()},
        "api_submit_transport": transport,
        "spin_us": args.spin_us,
        "daemon_spin_us": args.daemon_spin_us,
        "trace_batch_size": args.trace_batch_size or "default (64)",
        "ratio_api_submit_over_executor": ratios["api_submit"],
        "ratio_over_executor": ratios,  # every api_* row (api_submit_many: per image)
        "ratio_api_submit_over_api_submit_zmq": paired_ratio(samples, "api_submit", "api_submit_zmq"),
        "cpu_us_per_call_both_processes": {name: round(1e6 * seconds / calls, 1)
                                           for name, seconds in cpu_total.items()},
        "cpu_ratio_over_executor": {name: round(cpu_total[name] / cpu_total["executor_in_process"], 3)
                                    for name in submits},
        "single_call_wall_us": singles,  # --tail-calls calls each, timed one by one: the spread
        "cpu_us_per_call_by_thread": {name: busy_threads(spent, calls) for name, spent in cpu.items()},
        "answers": answers,
        "daemon_tasks": tasks,
        "daemon_exit_codes": codes,
        "target_ratio": TARGET_RATIO,
        "meets_target": bool(ratios["api_submit"]["median_of_rounds"] <= TARGET_RATIO and answers["other"] == 0),
        "meets_target_by_row": {name: bool(ratio["median_of_rounds"] <= TARGET_RATIO and answers["other"] == 0)
                                for name, ratio in ratios.items() if name.startswith("api_submit")},
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
