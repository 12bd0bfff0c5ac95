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

rotating which goes first. Reported: microseconds per call (median and minimum over rounds) and the
ratio api / in-process per round (median) and of the minimums. The acceptance is a ratio <= 3.
- ``api_submit_many``: ``ApiClient.submit_many`` of ``--batch`` images at a time (its default window),
  reported per image: one task each, as many round trips as windows;

A ``ping`` round trip (no model work) is measured too, on both endpoints, to separate the socket from
the task.

Wall time on a busy machine is mostly waiting for a core: every hop between processes and threads
is a wake-up. So the CPU each configuration used is reported too (this process's CPU time plus the
daemon's, every thread, from /proc/PID/task/*/schedstat), per call and as a ratio: what a submit
costs a board that runs nothing else; and per thread (``/proc/PID/task/TID/comm``: the daemon names
its API and serving threads; its trace writer process is counted as "daemon-child:es-trace-writer"),
where a configuration's microseconds go. Prints one JSON document.

    .venv/bin/python bench/api_submit.py [--rounds 30] [--calls 100]
"""
import argparse
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
from typing import Callable, Dict, List

import numpy as np

from edgesplit.runtime.api import ApiClient
from edgesplit.runtime.bundle.store import load_bundle
from edgesplit.runtime.default_bundle import default_bundle_path
from edgesplit.runtime.executor.executor import Executor
from timing import paired_ratio

TARGET_RATIO = 3.0
ASSETS = Path(__file__).resolve().parents[1] / "runtime" / "assets" / "mnist_heldout.npz"


def edgesplit_command() -> List[str]:
    found = shutil.which("edgesplit", path=os.path.dirname(sys.executable))
    return [found] if found else [sys.executable, "-m", "edgesplit.runtime.cli"]


def start_daemon(folder: Path, timeout_s: float = 60.0) -> subprocess.Popen:
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


def all_thread_cpu(daemon_pid: int) -> Dict[str, float]:
    """The bench's threads, the daemon's, and those of the daemon's child processes (its trace writer)."""
    seconds = dict(thread_cpu(os.getpid(), "bench"), **thread_cpu(daemon_pid, "daemon"))
    for child in children(daemon_pid):
        try:
            seconds.update(thread_cpu(child, "daemon-child"))
        except OSError:  # it ended meanwhile
            pass
    return seconds


def per_call(fn: Callable[[int], object], calls: int, offset: int, cpu: Dict[str, Dict[str, float]], name: str,
             daemon_pid: int) -> float:
    before = all_thread_cpu(daemon_pid)
    start = time.perf_counter()
    for i in range(calls):
        fn(offset + i)
    elapsed = time.perf_counter() - start
    after = all_thread_cpu(daemon_pid)
    spent = cpu.setdefault(name, {})
    for thread, seconds in after.items():
        spent[thread] = spent.get(thread, 0.0) + seconds - before.get(thread, 0.0)
    return elapsed / calls


def interleaved(fns: Dict[str, Callable[[int], object]], rounds: int, calls: int, daemon_pid: int):
    """(per-call seconds per round, CPU seconds per thread) of each configuration."""
    names = list(fns)
    for name in names:
        per_call(fns[name], calls, 0, {}, name, daemon_pid)  # warm-up, not counted
    samples = {name: [] for name in names}  # type: Dict[str, List[float]]
    cpu = {}  # type: Dict[str, Dict[str, float]]
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            samples[name].append(per_call(fns[name], calls, r * calls, cpu, name, daemon_pid))
    return samples, cpu


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
    args = parser.parse_args(argv)
    if args.calls % args.batch:
        parser.error("--batch must divide --calls")

    images = np.load(str(ASSETS))["images"]
    executor = Executor(load_bundle(default_bundle_path()))
    work = Path(tempfile.mkdtemp(prefix="edgesplit-api-bench-"))
    proc = start_daemon(work)
    answers = {"ok": 0, "other": 0}
    try:
        with ApiClient(str(work / "api.sock"), timeout_s=10.0) as api, \
                ApiClient(str(work / "api.sock"), timeout_s=10.0, transport="zmq") as api_zmq:
            def submitter(client: ApiClient) -> Callable[[int], None]:
                def submit(i: int) -> None:
                    answer = client.submit(images[i % len(images)][None])
                    answers["ok" if answer.ok else "other"] += 1
                return submit

            def submit_many(i: int) -> None:
                if i % args.batch == 0:  # one batch per --batch calls: the per-call figures are per image
                    rows = np.take(images, range(i, i + args.batch), axis=0, mode="wrap")
                    for answer in api.submit_many(rows):
                        answers["ok" if answer.ok else "other"] += 1

            fns = {"api_submit": submitter(api),
                   "api_submit_many": submit_many,
                   "api_submit_zmq": submitter(api_zmq),
                   "executor_in_process": lambda i: executor.run(images[i % len(images)][None]),
                   "api_ping": lambda i: api.ping(),
                   "api_ping_zmq": lambda i: api_zmq.ping()}
            samples, cpu = interleaved(fns, args.rounds, args.calls, proc.pid)
            status = api.status()
            transport = api.transport
    finally:
        code = stop_daemon(proc)
    shutil.rmtree(str(work), ignore_errors=True)
    ratio = paired_ratio(samples, "api_submit", "executor_in_process")
    calls = args.rounds * args.calls
    cpu_total = {name: sum(spent.values()) for name, spent in cpu.items()}
    print(json.dumps({
        "bench": "api_submit",
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "rounds": args.rounds,
        "calls_per_round": args.calls,
        "us_per_call": {name: {"median": round(1e6 * statistics.median(v), 1), "min": round(1e6 * min(v), 1)}
                        for name, v in samples.items()},
        "api_submit_transport": transport,
        "ratio_api_submit_over_executor": ratio,
        "ratio_api_submit_many_per_image_over_executor": paired_ratio(samples, "api_submit_many",
                                                                      "executor_in_process"),
        "ratio_api_submit_zmq_over_executor": paired_ratio(samples, "api_submit_zmq", "executor_in_process"),
        "ratio_api_submit_over_api_submit_zmq": paired_ratio(samples, "api_submit", "api_submit_zmq"),
        "ratio_api_ping_over_executor": paired_ratio(samples, "api_ping", "executor_in_process"),
        "ratio_api_ping_zmq_over_executor": paired_ratio(samples, "api_ping_zmq", "executor_in_process"),
        "cpu_us_per_call_both_processes": {name: round(1e6 * seconds / calls, 1)
                                           for name, seconds in cpu_total.items()},
        "cpu_ratio_api_submit_over_executor": round(cpu_total["api_submit"] / cpu_total["executor_in_process"], 3),
        "cpu_ratio_api_submit_many_over_executor": round(cpu_total["api_submit_many"]
                                                         / cpu_total["executor_in_process"], 3),
        "cpu_ratio_api_submit_zmq_over_executor": round(cpu_total["api_submit_zmq"]
                                                        / cpu_total["executor_in_process"], 3),
        "cpu_us_per_call_by_thread": {name: busy_threads(spent, calls) for name, spent in cpu.items()},
        "answers": answers,
        "daemon_tasks": status.get("tasks", {}).get("ok"),
        "daemon_exit_code": code,
        "target_ratio": TARGET_RATIO,
        "meets_target": bool(ratio["median_of_rounds"] <= TARGET_RATIO and answers["other"] == 0),
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
