"""The peer pool on a real local Ray cluster: requests/s with 1, 2 and 4 replicas, what limits it, and a
replica killed under a device's stream. Prints JSON.

    .venv/bin/python bench/pool_throughput.py [--clients 16] [--seconds 8] [--tasks 300]

- ``throughput``: ``--clients`` DEALER sockets (closed loop, one request each in flight) send cut-2
  requests of the default bundle to one ``edgesplit pool`` front end for ``--seconds``; replicas 1, 2, 4
  (each reserves one logical CPU; the head offers 8 however many cores there are).
- ``front_end_cpu_ms_per_request``: the front end process's CPU time (/proc) over the window / answers.
  ``front_end_core_share`` = that x requests/s: the share of one core the front end used. Below 1 the
  front end is not what limits the rate.
- ``ray_handle_direct_per_s``: the same replicas called from a plain Ray driver through a deployment
  handle, ``--clients`` calls in flight, no front end and no ZeroMQ: Ray Serve's own rate here.
- ``noop``: the same front end code (``PoolFrontEnd``) on a deployment that answers without running the
  model (2 replicas): the rate of front end + Ray Serve alone.
- ``segment_runs_per_s``: the rest of the model from cut 2 in this process, no Ray, no ZeroMQ: what one
  core does with the compute alone.
- ``replica_killed``: ``edgesplit run`` listing two front ends, a replica SIGKILLed 3 s into its stream;
  every task must be completed (answered by the pool, or a counted local fallback).
"""
import argparse
import asyncio
import json
import os
import platform
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

import numpy as np
import zmq

from edgesplit.runtime.default_bundle import default_bundle_path, load_heldout
from edgesplit.runtime.bundle.store import load_bundle
from edgesplit.runtime.executor.executor import Executor
from edgesplit.runtime.peer.process import PeerProcess
from edgesplit.runtime.pool.local_cluster import RayHead
from edgesplit.runtime.transport import wire

CUT = 2
EDGESPLIT = [sys.executable, "-m", "edgesplit.runtime.cli"]


class NoopReplica:
    """Answers like a replica, without running the model: isolates the front end and Ray Serve."""

    def __init__(self, bundle, threads=1):
        bundle = load_bundle(default_bundle_path())
        self.wire_hash = bundle.wire_hash
        self.scores = np.zeros((1, 10), np.float32)

    def describe(self):
        return {"wire_hash": self.wire_hash, "bundle": "noop", "pid": os.getpid()}

    def run(self, cut, tensors, thresholds, use_exits):
        return {"status": "ok", "exit_id": 2, "compute_s": 0.0, "tensors": {"logits": self.scores}}


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cut_tensors():
    bundle = load_bundle(default_bundle_path())
    images, _ = load_heldout()
    executor = Executor(bundle, threads=1)
    live = executor.run(images[:1], use_exits=False, stop_at_cut=CUT).live
    start, runs = time.perf_counter(), 0
    while time.perf_counter() - start < 2.0:
        executor.run_from(CUT, live, use_exits=False)
        runs += 1
    return bundle.wire_hash, {k: np.ascontiguousarray(v) for k, v in live.items()}, runs / (time.perf_counter() - start)


def closed_loop(endpoint, wire_hash, live, clients, seconds):
    """Requests answered ``ok`` per second by ``clients`` sockets with one request each in flight."""
    context = zmq.Context.instance()
    poller, sockets = zmq.Poller(), []
    for _ in range(clients):
        sock = context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(endpoint)
        poller.register(sock, zmq.POLLIN)
        sockets.append(sock)
    ids = iter(range(1, 1 << 40))

    def send(sock):
        sock.send_multipart(wire.encode_request(next(ids), "infer", wire_hash, CUT, 10.0, live, None, False), copy=False)

    for sock in sockets:
        send(sock)
    ok = other = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for sock, _ in poller.poll(100):
            reply = wire.decode_reply(sock.recv_multipart())
            if isinstance(reply, wire.Reply) and reply.status == "ok":
                ok += 1
            else:
                other += 1
            send(sock)
    for sock in sockets:
        sock.close(0)
    return ok / seconds, other


def direct_rate(address, live, clients, seconds):
    """Calls per second from a plain Ray driver to the same replicas through a deployment handle, with
    ``clients`` calls in flight: Ray Serve alone, without the front end."""
    import ray
    from ray import serve

    from edgesplit.runtime.pool.engine import DEPLOYMENT

    ray.init(address=address, namespace="edgesplit", logging_level="ERROR", log_to_driver=False)
    try:
        (name,) = list(serve.status().applications)
        handle = serve.get_deployment_handle(DEPLOYMENT, app_name=name)

        async def closed(end):
            done = 0
            while time.monotonic() < end:
                await handle.run.remote(CUT, live, None, False)
                done += 1
            return done

        async def all_clients():
            await asyncio.gather(*[closed(time.monotonic() + 1.0) for _ in range(clients)])  # warm
            return sum(await asyncio.gather(*[closed(time.monotonic() + seconds) for _ in range(clients)]))

        return round(asyncio.run(all_clients()) / seconds, 1)
    finally:
        ray.shutdown()


def delete_applications(address):
    import ray
    from ray import serve

    ray.init(address=address, namespace="edgesplit", logging_level="ERROR", log_to_driver=False)
    try:
        for name in list(serve.status().applications):
            serve.delete(name)
    finally:
        ray.shutdown()


def measure_front_end(front, wire_hash, live, args):
    closed_loop(front.endpoint, wire_hash, live, args.clients, 1.0)  # warm: connections, first calls
    cpu0 = cpu_seconds(front.pid)
    rate, refused = closed_loop(front.endpoint, wire_hash, live, args.clients, args.seconds)
    cpu = cpu_seconds(front.pid) - cpu0
    answers = max(1.0, rate * args.seconds)
    return {"requests_per_s": round(rate, 1), "not_ok": refused,
            "front_end_cpu_ms_per_request": round(1e3 * cpu / answers, 3),
            "front_end_core_share": round(cpu / args.seconds, 3)}


def front_end(address, extra=()):
    argv = EDGESPLIT + ["pool", "default", "--ray-address", address, "--bind", "tcp://127.0.0.1:*", "--json"]
    return PeerProcess("default", launcher=lambda _: argv + list(extra), start_timeout_s=300)


def noop_front_end_main(address):
    """Child process: a front end (the product's PoolFrontEnd) on NoopReplica; prints the ready line."""
    from edgesplit.runtime.pool.engine import PoolEngine
    from edgesplit.runtime.pool.front_end import PoolFrontEnd

    engine = PoolEngine(address)
    wire_hash = load_bundle(default_bundle_path()).wire_hash
    engine.deploy("default", wire_hash, 2, deployment=NoopReplica)
    front = PoolFrontEnd(engine, wire_hash)
    endpoint = front.bind("tcp://127.0.0.1:*")
    print(json.dumps({"event": "ready", "endpoint": endpoint}), flush=True)

    async def serve():
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await front.serve(stop)

    asyncio.run(serve())
    front.close()
    engine.close()


def replica_killed(address, args):
    delete_applications(address)
    first = front_end(address, ["--replicas", "2"])
    second = front_end(address, ["--replicas", "2"])
    images, labels = load_heldout()
    with tempfile.TemporaryDirectory() as scratch:
        x, db = os.path.join(scratch, "x.npy"), os.path.join(scratch, "traces.db")
        np.save(x, images[:args.tasks])
        run = subprocess.Popen(EDGESPLIT + ["run", "default", "--peer", first.endpoint + "," + second.endpoint,
                                            "--inputs", x, "--cut", str(CUT), "--thresholds", "0,0", "--limit",
                                            str(args.tasks), "--period-ms", "50", "--deadline-ms", "1000",
                                            "--traces", db, "--json"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        time.sleep(3.0)
        os.kill(first.ready["replica_pid"], signal.SIGKILL)
        out, _ = run.communicate(timeout=600)
        report = json.loads(out)
        with sqlite3.connect(db) as conn:
            rows = conn.execute("SELECT fallback, cut, result FROM tasks ORDER BY task_id").fetchall()
    for front in (first, second):
        front.stop(signal.SIGKILL)
    by_pool = sum(1 for fallback, cut, _ in rows if cut == CUT and not fallback)
    return {"tasks": report["tasks"], "completed": report["completed"], "rows_with_result": sum(1 for r in rows if r[2] is not None),
            "answered_by_pool": by_pool, "fallbacks": report["fallbacks"],
            "lost": report["tasks"] - by_pool - report["fallbacks"],
            "command": "edgesplit run default --peer FE1,FE2 --cut 2 --thresholds 0,0 --period-ms 50 "
                       "--deadline-ms 1000 --limit %d; SIGKILL of a replica at 3 s" % args.tasks}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--noop-front-end", metavar="ADDRESS", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.noop_front_end:
        return noop_front_end_main(args.noop_front_end)
    wire_hash, live, segment_rate = cut_tensors()
    head = RayHead(num_cpus=8)
    result = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "load_average_at_start": os.getloadavg()},
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "clients": args.clients,
              "seconds": args.seconds, "segment_runs_per_s": round(segment_rate, 1), "throughput": {}}
    try:
        for replicas in (1, 2, 4):
            delete_applications(head.address)
            front = front_end(head.address, ["--replicas", str(replicas)])
            try:
                result["throughput"][str(replicas)] = measure_front_end(front, wire_hash, live, args)
                result["throughput"][str(replicas)]["ray_handle_direct_per_s"] = direct_rate(
                    head.address, live, args.clients, args.seconds)
            finally:
                front.stop(signal.SIGKILL)
        delete_applications(head.address)
        noop = PeerProcess("default", launcher=lambda _: [sys.executable, __file__, "--noop-front-end", head.address],
                           start_timeout_s=300)
        try:
            result["noop"] = measure_front_end(noop, wire_hash, live, args)
        finally:
            noop.stop(signal.SIGKILL)
        result["replica_killed"] = replica_killed(head.address, args)
    finally:
        head.stop()
    base = result["throughput"]["1"]["requests_per_s"] or 1.0
    result["ratios"] = {"2_vs_1": round(result["throughput"]["2"]["requests_per_s"] / base, 2),
                        "4_vs_1": round(result["throughput"]["4"]["requests_per_s"] / base, 2),
                        "noop_vs_1": round(result["noop"]["requests_per_s"] / base, 2)}
    result["load_average_at_end"] = os.getloadavg()
    result["max_ongoing_per_replica"] = 64
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
