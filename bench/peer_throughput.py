"""Requests per second of ``edgesplit peer`` against a bare ZeroMQ ROUTER + onnxruntime loop, one run.

Load: ``--devices`` devices (default 16: 16 DEALER sockets, so 16 connections and 16 ROUTER
identities) spread over ``--device-procs`` processes (default 4), each device in a closed loop (one
request out, wait for its reply, next), sending small requests at ``--cut`` (default 2) of the
default bundle on loopback: the live tensor at that cut (batch 1), a deadline of ``--deadline-s``.
A device formats its request header from a template (the bytes ``wire.encode_request`` gives) and
counts a reply as answered when it is ``ok``, carries its request id and the result's bytes: the
load generator shares the machine's cores with the server, so the less it costs, the more the
figures say about the server (sixteen Python processes waking on two cores spent more CPU per
request than the server did).

Servers, all started once and loaded in turn (the order rotates each round, so drift and the other
load on the machine hit every server alike):

- ``bare``: a ROUTER that parses the JSON header, runs the cut's segment with the peer's own
  onnxruntime session options and sends a minimal reply: the floor, with no checks at all;
- ``peer``: ``edgesplit peer`` with batching off (``--max-batch 1``);
- ``peer_batched``: ``edgesplit peer --max-batch B --batch-window-us W``.

Reported per server: the median and best requests/s over the rounds, the server process's CPU time
per answered request (all its threads, and per thread, from /proc), the devices' CPU per request;
and per round, back to back, each server's requests/s over ``bare``'s and ``bare``'s server CPU per
request over its: median, quartiles and range over the rounds. Prints one JSON document.

    .venv/bin/python bench/peer_throughput.py [--devices 16] [--device-procs 4] [--seconds 2] [--rounds 9]
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


# ---------------------------------------------------------------- devices (child processes)


def request_template(bundle_hash: str, cut: int, live: Dict[str, np.ndarray], deadline_s: float):
    """(header bytes with ``%d`` where the id goes, tensor frames): ``wire.encode_request`` with the id left
    open, so a device pays a format per request, not an encode. The same bytes for every server."""
    from edgesplit.runtime.transport import wire

    marker = 987654321987
    frames = wire.encode_request(marker, "infer", bundle_hash, cut, deadline_s, live)
    head = frames[0].replace(b"%", b"%%").replace(b'"id":%d' % marker, b'"id":%d')
    assert head.count(b"%d") == 1 and head % marker == frames[0]
    return head, [bytes(memoryview(f).cast("B")) for f in frames[1:]]


def reply_ok(frames, request_id: int, result_bytes: int) -> str:
    """``ok`` when ``frames`` is an ok reply to ``request_id`` carrying ``result_bytes`` of result, else the
    status (or what is wrong): the same check for every server."""
    if len(frames) != 2:
        return "frames:%d" % len(frames)
    header = json.loads(frames[0].bytes)
    status = header.get("status")
    if status != "ok":
        return str(status)
    if header.get("id") != request_id or len(frames[1]) != result_bytes:
        return "wrong_reply"
    return "ok"


def devices(endpoint: str, count: int, head: bytes, payload: List[bytes], result_bytes: int, start: float,
            end: float, results) -> None:
    """``count`` devices (DEALER sockets, each its own connection and ROUTER identity) in one process, each
    in a closed loop: one request out, wait for its reply, the next. Fewer processes than devices keep
    the load generator's own CPU (16 Python processes waking on two cores) from setting the pace."""
    import zmq

    context = zmq.Context()
    poller = zmq.Poller()
    socks, next_id = [], {}
    for _ in range(count):
        sock = context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(endpoint)
        poller.register(sock, zmq.POLLIN)
        socks.append(sock)
    ok, other = 0, {}

    def send(sock) -> None:
        next_id[sock] = next_id.get(sock, 0) + 1
        sock.send(head % next_id[sock], zmq.SNDMORE)
        sock.send_multipart(payload)

    for sock in socks:
        send(sock)
    while True:
        now = time.monotonic()
        if now >= end:
            break
        ready = poller.poll(10000)
        if not ready:
            other["timeout"] = other.get("timeout", 0) + 1
            break
        done = time.monotonic()
        for sock, _ in ready:
            status = reply_ok(sock.recv_multipart(copy=False), next_id[sock], result_bytes)
            if start <= done < end:
                if status == "ok":
                    ok += 1
                else:
                    other[status] = other.get(status, 0) + 1
            if done < end:
                send(sock)
    for sock in socks:
        sock.close()
    results.put((ok, other, cpu_seconds(os.getpid())))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads (ZeroMQ's I/O thread too), from /proc."""
    with open("/proc/%d/stat" % pid) as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu_seconds(pid: int) -> Dict[str, float]:
    """CPU seconds per thread name of a process (the serve loop's main thread, ZeroMQ's I/O thread, ...)."""
    seconds = {}  # type: Dict[str, float]
    for task in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/stat" % (pid, task)) as stat:
                text = stat.read()
        except OSError:  # the thread ended
            continue
        name = "main" if task == str(pid) else text[text.index("(") + 1:text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        seconds[name] = seconds.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return seconds


def load(endpoint: str, args, request, result_bytes: int, server_pid: int) -> Dict[str, object]:
    """``args.devices`` closed-loop devices in ``args.device_procs`` processes for ``args.seconds`` after
    ``args.warm_s`` of warm-up."""
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    start = time.monotonic() + args.warm_s
    end = start + args.seconds
    shares = [args.devices // args.device_procs + (1 if i < args.devices % args.device_procs else 0)
              for i in range(args.device_procs)]
    procs = [ctx.Process(target=devices, args=(endpoint, n, request[0], request[1], result_bytes, start, end,
                                               results)) for n in shares if n]
    for proc in procs:
        proc.start()
    time.sleep(max(0.0, start - time.monotonic()))
    cpu_before, threads_before = cpu_seconds(server_pid), thread_cpu_seconds(server_pid)
    devices_before = sum(cpu_seconds(p.pid) for p in procs)
    time.sleep(max(0.0, end - time.monotonic()))
    cpu_used = cpu_seconds(server_pid) - cpu_before
    threads_after = thread_cpu_seconds(server_pid)
    devices_after = sum(cpu_seconds(p.pid) for p in procs)  # read before they exit: close enough to ``end``
    answers = [results.get(timeout=args.warm_s + args.seconds + 60) for _ in procs]
    for proc in procs:
        proc.join(10)
    ok = sum(a[0] for a in answers)
    other = {}  # type: Dict[str, int]
    for _, counts, _ in answers:
        for key, value in counts.items():
            other[key] = other.get(key, 0) + value
    per_request = lambda seconds: round(seconds / max(ok, 1) * 1e6, 1)
    return {"requests_per_s": ok / args.seconds, "ok": ok, "not_ok": other,
            "server_cpu_us_per_request": per_request(cpu_used),
            "server_threads_cpu_us_per_request": {name: per_request(value - threads_before.get(name, 0.0))
                                                  for name, value in threads_after.items()
                                                  if value - threads_before.get(name, 0.0) > 0},
            "devices_cpu_us_per_request": per_request(devices_after - devices_before)}


def spread(values: List[float]) -> Dict[str, float]:
    """Median, quartiles and range of per-round values."""
    ordered = sorted(values)
    quartiles = statistics.quantiles(ordered, n=4) if len(ordered) > 1 else [ordered[0]] * 3
    return {"median": round(statistics.median(ordered), 3), "q1": round(quartiles[0], 3),
            "q3": round(quartiles[2], 3), "min": round(ordered[0], 3), "max": round(ordered[-1], 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=16)
    parser.add_argument("--device-procs", type=int, default=4, help="processes the devices are spread over")
    parser.add_argument("--cut", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=2.0, help="measured seconds per server per round")
    parser.add_argument("--warm-s", type=float, default=1.0, help="unmeasured seconds before each measurement")
    parser.add_argument("--rounds", type=int, default=9)
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
    request = request_template(bundle.wire_hash, args.cut, live, args.deadline_s)
    final = bundle.manifest.outputs[0]
    result_bytes = int(np.prod([1] + list(final.shape[1:]))) * np.dtype(final.dtype).itemsize
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
            rounds.append({name: load(servers[name].endpoint, args, request, result_bytes, servers[name].pid)
                           for name in order})
    finally:
        for server in servers.values():
            server.stop()
    rates = {name: [r[name]["requests_per_s"] for r in rounds] for name in names}
    summary = {name: {"median_requests_per_s": round(statistics.median(v), 1), "best_requests_per_s": round(max(v), 1),
                      "median_server_cpu_us_per_request": statistics.median(
                          r[name]["server_cpu_us_per_request"] for r in rounds),
                      "median_devices_cpu_us_per_request": statistics.median(
                          r[name]["devices_cpu_us_per_request"] for r in rounds)}
               for name, v in rates.items()}
    ratios, cpu_ratios = {}, {}
    if "bare" in names:
        for name in names:
            if name != "bare":
                ratios[name + "/bare"] = spread([r[name]["requests_per_s"] / r["bare"]["requests_per_s"]
                                                 for r in rounds])
                # Server CPU per request, bare over this server: above 1 when this server costs less.
                cpu_ratios["bare/" + name] = spread([r["bare"]["server_cpu_us_per_request"]
                                                     / r[name]["server_cpu_us_per_request"] for r in rounds])
    print(json.dumps({
        "bench": "peer_throughput", "date": datetime.date.today().isoformat(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "loadavg_at_start": os.getloadavg()},
        "settings": {k: v for k, v in vars(args).items() if k != "bare_server"},
        "summary": summary, "requests_per_s_ratios_per_round": ratios, "server_cpu_ratios_per_round": cpu_ratios,
        "ratio_target_peer": RATIO_TARGET,
        "rounds": rounds}, indent=1))


if __name__ == "__main__":
    main()
