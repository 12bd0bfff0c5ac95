"""Requests per second of ``edgesplit peer`` against a bare ZeroMQ ROUTER + onnxruntime loop, one run.

Load: ``--devices`` device processes (default 16), each a DEALER in a closed loop (one request out,
wait for its reply, next), sending small requests at ``--cut`` (default 2) of the default bundle on
loopback: the live tensor at that cut (batch 1), a deadline of ``--deadline-s``.

Servers, all started once and loaded in turn (the order rotates each round, so drift and the other
load on the machine hit every server alike):

- ``bare``: a ROUTER that parses the JSON header, runs the cut's segment with the peer's own
  onnxruntime session options and sends a minimal reply: the floor, with no checks at all;
- ``peer``: ``edgesplit peer`` with batching off (``--max-batch 1``);
- ``peer_batched``: ``edgesplit peer --max-batch B --batch-window-us W``.

Every server speaks the same wire (the device decodes each reply with ``wire.decode_reply`` and
counts only ``ok`` replies), so the devices are identical for all. Reported per server: the median
and best requests/s over the rounds, the server process's CPU time per answered request (all its
threads, from /proc), and the ratios to ``bare`` as the median of per-round ratios
(both measured back to back). Prints one JSON document.

    .venv/bin/python bench/peer_throughput.py [--devices 16] [--seconds 3] [--rounds 5]
"""
import argparse
import datetime
import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Dict, List

import numpy as np

from edgesplit.runtime.bundle.store import load_bundle
from edgesplit.runtime.default_bundle import default_bundle_path
from edgesplit.runtime.peer.process import PeerProcess

RATIO_TARGET = 0.8


# ---------------------------------------------------------------- the bare server (a child process)


def bare_server(bundle_dir: str, cut: int) -> None:
    """ROUTER + one onnxruntime session per main segment after ``cut``; no validation, no queue."""
    import onnxruntime as ort
    import zmq

    from edgesplit.runtime.segments.onnx_runner import session_options, threads_for

    manifest = load_bundle(bundle_dir).manifest
    segments = manifest.main[cut:]
    sessions = [(ort.InferenceSession(str(os.path.join(bundle_dir, s.file)),
                                      sess_options=session_options(threads_for(s.macs)),
                                      providers=["CPUExecutionProvider"]),
                 [t.name for t in s.outputs]) for s in segments]
    output = manifest.outputs[0].name
    sock = zmq.Context.instance().socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    print(json.dumps({"event": "ready", "endpoint": "tcp://127.0.0.1:%d" % port}), flush=True)
    while True:
        identity, header, *frames = sock.recv_multipart(copy=False)
        head = json.loads(header.bytes)
        env = {t["name"]: np.frombuffer(f.buffer, dtype=t["dtype"]).reshape(t["shape"])
               for t, f in zip(head["tensors"], frames)}
        for session, names in sessions:
            env.update(zip(names, session.run(names, env)))
        result = env[output]
        reply = {"v": 1, "id": head["id"], "status": "ok", "message": "", "exit": len(manifest.exits) - 1,
                 "compute_s": 0.0, "service_s": 0.0,
                 "tensors": [{"name": output, "dtype": "float32", "shape": list(result.shape)}]}
        sock.send_multipart([identity, json.dumps(reply).encode(), result], copy=False)


class BareProcess(PeerProcess):
    """The bare server as a child process, started and stopped like ``edgesplit peer``."""

    def __init__(self, bundle_dir: str, cut: int):
        self.args = [sys.executable, os.path.abspath(__file__), "--bare-server", str(bundle_dir), "--cut", str(cut)]
        import tempfile

        self._stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self._stderr)
        self.ready = self._ready_line(60.0)
        self.endpoint = str(self.ready["endpoint"])


# ---------------------------------------------------------------- a device (a child process)


def device(endpoint: str, bundle_hash: str, cut: int, live: Dict[str, np.ndarray], deadline_s: float,
           start: float, end: float, results) -> None:
    import zmq

    from edgesplit.runtime.transport import wire

    sock = zmq.Context().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    request_id, ok, other = 0, 0, {}
    while True:
        now = time.monotonic()
        if now >= end:
            break
        request_id += 1
        sock.send_multipart(wire.encode_request(request_id, "infer", bundle_hash, cut, deadline_s, live), copy=False)
        if not sock.poll(10000):
            other["timeout"] = other.get("timeout", 0) + 1
            break
        reply = wire.decode_reply(sock.recv_multipart(copy=False))
        done = time.monotonic()
        if not start <= done < end:
            continue
        status = getattr(reply, "status", "malformed")
        if status == "ok" and reply.request_id == request_id:
            ok += 1
        else:
            other[status] = other.get(status, 0) + 1
    sock.close()
    results.put((ok, other))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads (ZeroMQ's I/O thread too), from /proc."""
    with open("/proc/%d/stat" % pid) as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(endpoint: str, args, bundle_hash: str, live: Dict[str, np.ndarray], server_pid: int) -> Dict[str, object]:
    """``args.devices`` closed-loop devices for ``args.seconds`` after ``args.warm_s`` of warm-up."""
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    start = time.monotonic() + args.warm_s
    end = start + args.seconds
    procs = [ctx.Process(target=device, args=(endpoint, bundle_hash, args.cut, live, args.deadline_s,
                                              start, end, results)) for _ in range(args.devices)]
    for proc in procs:
        proc.start()
    time.sleep(max(0.0, start - time.monotonic()))
    cpu_before = cpu_seconds(server_pid)
    time.sleep(max(0.0, end - time.monotonic()))
    cpu_used = cpu_seconds(server_pid) - cpu_before
    answers = [results.get(timeout=args.warm_s + args.seconds + 60) for _ in procs]
    for proc in procs:
        proc.join(10)
    ok = sum(a[0] for a in answers)
    other = {}  # type: Dict[str, int]
    for _, counts in answers:
        for key, value in counts.items():
            other[key] = other.get(key, 0) + value
    return {"requests_per_s": ok / args.seconds, "ok": ok, "not_ok": other,
            "server_cpu_us_per_request": round(cpu_used / max(ok, 1) * 1e6, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=16)
    parser.add_argument("--cut", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per server per round")
    parser.add_argument("--warm-s", type=float, default=1.0, help="unmeasured seconds before each measurement")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--deadline-s", type=float, default=1.0)
    parser.add_argument("--max-batch", type=int, default=16, help="peer_batched: --max-batch")
    parser.add_argument("--batch-window-us", type=int, default=0, help="peer_batched: --batch-window-us")
    parser.add_argument("--servers", default="bare,peer,peer_batched")
    parser.add_argument("--bare-server", metavar="BUNDLE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_server:
        bare_server(args.bare_server, args.cut)
        return
    bundle_dir = str(default_bundle_path())
    bundle = load_bundle(bundle_dir)
    spec = bundle.manifest.cuts[args.cut].tensors
    rng = np.random.default_rng(0)
    live = {t.name: rng.standard_normal([1] + list(t.shape[1:])).astype(t.dtype) for t in spec}
    starters = {"bare": lambda: BareProcess(bundle_dir, args.cut),
                "peer": lambda: PeerProcess(bundle_dir, extra=["--max-batch", "1"]),
                "peer_batched": lambda: PeerProcess(bundle_dir, extra=[
                    "--max-batch", str(args.max_batch), "--batch-window-us", str(args.batch_window_us)])}
    names = args.servers.split(",")
    servers = {name: starters[name]() for name in names}
    rounds = []  # type: List[Dict[str, Dict[str, object]]]
    try:
        for index in range(args.rounds):
            order = names[index % len(names):] + names[:index % len(names)]
            rounds.append({name: load(servers[name].endpoint, args, bundle.wire_hash, live, servers[name].pid)
                           for name in order})
    finally:
        for server in servers.values():
            server.stop()
    rates = {name: [r[name]["requests_per_s"] for r in rounds] for name in names}
    summary = {name: {"median_requests_per_s": round(statistics.median(v), 1), "best_requests_per_s": round(max(v), 1),
                      "median_server_cpu_us_per_request": statistics.median(
                          r[name]["server_cpu_us_per_request"] for r in rounds)}
               for name, v in rates.items()}
    ratios = {}
    if "bare" in names:
        for name in names:
            if name != "bare":
                ratios[name + "/bare"] = round(statistics.median(
                    r[name]["requests_per_s"] / r["bare"]["requests_per_s"] for r in rounds), 3)
    print(json.dumps({
        "bench": "peer_throughput", "date": datetime.date.today().isoformat(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "loadavg_at_start": os.getloadavg()},
        "settings": {k: v for k, v in vars(args).items() if k != "bare_server"},
        "summary": summary, "ratios_median_per_round": ratios, "ratio_target_peer": RATIO_TARGET,
        "rounds": rounds}, indent=1))


if __name__ == "__main__":
    main()
