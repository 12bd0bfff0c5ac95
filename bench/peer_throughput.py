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

Servers, all started once; the devices hold a connection to each and load them in turn, in slots of
``--slot-s`` (the first ``--settle-s`` of a slot not counted), one slot per server per round, the
order rotating each round, so that the other load on this shared machine hits every server alike and
a round's ratios compare servers measured within about two seconds of each other:

- ``bare``: a ROUTER that parses the JSON header, runs the cut's segment with the peer's own
  onnxruntime session options and sends a minimal reply: the floor, with no checks at all;
- ``peer``: ``edgesplit peer`` with batching off (``--max-batch 1``);
- ``peer_batched``: ``edgesplit peer --max-batch B --batch-window-us W``;
- with ``--before DIR``, ``peer_before`` and ``peer_batched_before``: the same two from an older build.

Reported per server: the median and best requests/s over the rounds, the server process's CPU time
per answered request (all its threads, and per thread, from /proc/PID/task/*/schedstat), the devices'
CPU per request;
and per round, back to back, each server's requests/s over ``bare``'s and ``bare``'s server CPU per
request over its: median, quartiles and range over the rounds. Prints one JSON document.

    .venv/bin/python bench/peer_throughput.py [--devices 16] [--device-procs 4] [--rounds 30] [--slot-s 0.6]

An older build to compare with, in the same run:

    git worktree add /tmp/before OLD_COMMIT && mkdir -p /tmp/before_pkg/edgesplit
    for f in runtime policies_lite board_configs; do ln -s /tmp/before/$f /tmp/before_pkg/edgesplit/$f; done
    .venv/bin/python bench/peer_throughput.py --before /tmp/before_pkg
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
from typing import Dict, List, Optional, Tuple

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


def devices(endpoints: List[str], count: int, head: bytes, payload: List[bytes], result_bytes: int,
            schedule: "Schedule", results) -> None:
    """``count`` devices in one process, each with a DEALER socket to every server (so its own connection
    and ROUTER identity on each) and in a closed loop: one request out to the server whose slot it is,
    wait for its reply, the next. A reply counts for its slot when it is ``ok`` and both sent and answered
    within the slot, after the slot's settling time. Fewer processes than devices keep the load
    generator's own CPU (sixteen Python processes waking on two cores) from setting the pace."""
    import zmq

    context = zmq.Context()
    poller = zmq.Poller()
    socks = []  # per device, per server
    owner = {}
    for device in range(count):
        row = []
        for endpoint in endpoints:
            sock = context.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(endpoint)
            poller.register(sock, zmq.POLLIN)
            owner[sock] = device
            row.append(sock)
        socks.append(row)
    ok = [0] * len(schedule.servers)
    other = [{} for _ in schedule.servers]  # type: List[Dict[str, int]]
    in_flight = [None] * count  # (slot, request id) per device
    request_id = 0

    def send(device: int) -> None:
        nonlocal request_id
        slot = schedule.slot_at(time.monotonic())
        if slot is None:
            in_flight[device] = None
            return
        request_id += 1
        sock = socks[device][schedule.servers[slot]]
        sock.send(head % request_id, zmq.SNDMORE)
        sock.send_multipart(payload)
        in_flight[device] = (slot, request_id)

    time.sleep(max(0.0, schedule.start - time.monotonic()))
    for device in range(count):
        send(device)
    while any(in_flight):
        ready = poller.poll(10000)
        if not ready:
            other[0]["timeout"] = other[0].get("timeout", 0) + 1
            break
        done = time.monotonic()
        for sock, _ in ready:
            device = owner[sock]
            slot, sent_id = in_flight[device]
            status = reply_ok(sock.recv_multipart(copy=False), sent_id, result_bytes)
            if schedule.counts(slot, done):
                if status == "ok":
                    ok[slot] += 1
                else:
                    other[slot][status] = other[slot].get(status, 0) + 1
            send(device)
    for row in socks:
        for sock in row:
            sock.close()
    results.put((ok, other))


class Schedule:
    """Time slots, one server each: ``slot_s`` long, of which the first ``settle_s`` are not counted (the
    server's caches warm up, the last slot's replies arrive)."""

    def __init__(self, start: float, slot_s: float, settle_s: float, servers: List[int]):
        self.start, self.slot_s, self.settle_s, self.servers = start, slot_s, settle_s, servers

    def slot_at(self, now: float) -> Optional[int]:
        slot = int((now - self.start) // self.slot_s)
        return slot if 0 <= slot < len(self.servers) else None

    def counts(self, slot: int, done: float) -> bool:
        begin = self.start + slot * self.slot_s
        return begin + self.settle_s <= done < begin + self.slot_s

    def window(self, slot: int) -> Tuple[float, float]:
        begin = self.start + slot * self.slot_s
        return begin + self.settle_s, begin + self.slot_s


def cpu_seconds(pid: int) -> float:
    """CPU time of a process, all its threads (ZeroMQ's I/O thread too), from /proc (nanoseconds)."""
    return sum(thread_cpu_seconds(pid).values())


def thread_cpu_seconds(pid: int) -> Dict[str, float]:
    """CPU seconds per thread name of a process (the serve loop's main thread, ZeroMQ's I/O thread, ...)."""
    seconds = {}  # type: Dict[str, float]
    for task in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, task)) as stat:
                run_ns = int(stat.read().split()[0])
            with open("/proc/%d/task/%s/comm" % (pid, task)) as comm:
                name = "main" if task == str(pid) else comm.read().strip()
        except OSError:  # the thread ended
            continue
        seconds[name] = seconds.get(name, 0.0) + run_ns / 1e9
    return seconds


def run_slots(endpoints: List[str], pids: List[int], args, request, result_bytes: int,
              servers: List[int]) -> List[Dict[str, object]]:
    """Devices for the whole schedule; per slot the answered requests, the server's CPU per thread and the
    devices' CPU, read at the edges of the counted part of the slot."""
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    # A last, unmeasured slot: the devices are still at work (and their threads alive) when the last
    # measured one ends.
    schedule = Schedule(time.monotonic() + 1.0, args.slot_s, args.settle_s, servers + servers[-1:])
    shares = [args.devices // args.device_procs + (1 if i < args.devices % args.device_procs else 0)
              for i in range(args.device_procs)]
    procs = [ctx.Process(target=devices, args=(endpoints, n, request[0], request[1], result_bytes, schedule,
                                               results)) for n in shares if n]
    for proc in procs:
        proc.start()
    readings = []
    for slot, server in enumerate(servers):
        begin, end = schedule.window(slot)
        time.sleep(max(0.0, begin - time.monotonic()))
        before = (thread_cpu_seconds(pids[server]), sum(cpu_seconds(p.pid) for p in procs))
        time.sleep(max(0.0, end - time.monotonic()))
        readings.append((before, (thread_cpu_seconds(pids[server]), sum(cpu_seconds(p.pid) for p in procs))))
    answers = [results.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(10)
    slots = []
    for slot, ((threads_before, devices_before), (threads_after, devices_after)) in enumerate(readings):
        ok = sum(a[0][slot] for a in answers)
        other = {}  # type: Dict[str, int]
        for _, counts in answers:
            for key, value in counts[slot].items():
                other[key] = other.get(key, 0) + value
        threads = {name: value - threads_before.get(name, 0.0) for name, value in threads_after.items()}
        per_request = lambda seconds: round(seconds / max(ok, 1) * 1e6, 1)
        slots.append({"requests_per_s": ok / (args.slot_s - args.settle_s), "ok": ok, "not_ok": other,
                      "server_cpu_us_per_request": per_request(sum(threads.values())),
                      "server_threads_cpu_us_per_request": {k: per_request(v) for k, v in threads.items() if v > 0},
                      "devices_cpu_us_per_request": per_request(devices_after - devices_before)})
    return slots


def spread(values: List[float]) -> Dict[str, float]:
    """Median, quartiles and range of per-round values."""
    ordered = sorted(values)
    quartiles = statistics.quantiles(ordered, n=4, method="inclusive") if len(ordered) > 1 else [ordered[0]] * 3
    return {"median": round(statistics.median(ordered), 3), "q1": round(quartiles[0], 3),
            "q3": round(quartiles[2], 3), "min": round(ordered[0], 3), "max": round(ordered[-1], 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=16)
    parser.add_argument("--device-procs", type=int, default=4, help="processes the devices are spread over")
    parser.add_argument("--cut", type=int, default=2)
    parser.add_argument("--slot-s", type=float, default=0.6, help="seconds each server is loaded in turn")
    parser.add_argument("--settle-s", type=float, default=0.1, help="first seconds of a slot not counted")
    parser.add_argument("--rounds", type=int, default=30, help="rounds: one slot per server, order rotating")
    parser.add_argument("--deadline-s", type=float, default=1.0)
    parser.add_argument("--max-batch", type=int, default=16, help="peer_batched: --max-batch")
    parser.add_argument("--batch-window-us", type=int, default=0, help="peer_batched: --batch-window-us")
    parser.add_argument("--servers", default="bare,peer,peer_batched")
    parser.add_argument("--before", metavar="DIR",
                        help="also load peer_before and peer_batched_before: the peer of an older build, importable "
                             "as edgesplit from DIR (a folder whose edgesplit/ links to an older checkout's folders)")
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
    if args.before:
        before_env = dict(os.environ, PYTHONPATH=os.path.abspath(args.before))
        starters["peer_before"] = lambda: PeerProcess(bundle_dir, extra=["--max-batch", "1"], env=before_env)
        starters["peer_batched_before"] = lambda: PeerProcess(bundle_dir, env=before_env, extra=[
            "--max-batch", str(args.max_batch), "--batch-window-us", str(args.batch_window_us)])
        names += ["peer_before", "peer_batched_before"]
    servers = {name: starters[name]() for name in names}
    # One unmeasured round first (connections, warm-up), then the rounds, the order rotating each round.
    order = list(range(len(names))) + [i for r in range(args.rounds)
                                       for i in (list(range(len(names)))[r % len(names):]
                                                 + list(range(len(names)))[:r % len(names)])]
    try:
        slots = run_slots([servers[n].endpoint for n in names], [servers[n].pid for n in names], args, request,
                          result_bytes, order)
    finally:
        stopped = {name: server.stop() for name, server in servers.items()}
    # The peers' own counters (served, batches, batched) from their stopped line, over the whole run.
    peer_stats = {}
    for name, (_, out, _) in stopped.items():
        lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        if lines and lines[-1].get("event") == "stopped":
            peer_stats[name] = {k: lines[-1].get(k) for k in ("served", "batches", "batched", "expired", "overloaded")}
    rounds = []  # type: List[Dict[str, Dict[str, object]]]
    for r in range(args.rounds):
        first = (r + 1) * len(names)
        rounds.append({names[order[i]]: slots[i] for i in range(first, first + len(names))})
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
                per_round = [r[name]["requests_per_s"] / r["bare"]["requests_per_s"] for r in rounds]
                ratios[name + "/bare"] = spread(per_round)
                # The targets: peer >= 0.8x bare, with batching above bare.
                if "batched" in name:
                    ratios[name + "/bare"]["rounds_above_1"] = sum(ratio > 1.0 for ratio in per_round)
                else:
                    ratios[name + "/bare"]["rounds_at_target"] = sum(ratio >= RATIO_TARGET for ratio in per_round)
                # Server CPU per request, bare over this server: above 1 when this server costs less.
                cpu_ratios["bare/" + name] = spread([r["bare"]["server_cpu_us_per_request"]
                                                     / r[name]["server_cpu_us_per_request"] for r in rounds])
    print(json.dumps({
        "bench": "peer_throughput", "date": datetime.date.today().isoformat(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "loadavg_at_start": os.getloadavg()},
        "settings": {k: v for k, v in vars(args).items() if k != "bare_server"},
        "summary": summary, "requests_per_s_ratios_per_round": ratios, "server_cpu_ratios_per_round": cpu_ratios,
        "ratio_target_peer": RATIO_TARGET, "peer_stats": peer_stats,
        "rounds": rounds}, indent=1))


if __name__ == "__main__":
    main()
