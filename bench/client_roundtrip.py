"""What the device's peer client adds to a small round trip: PeerClient vs bare pyzmq, in one run.

One echo server process (bare pyzmq, no edgesplit code) answers every request on a ROUTER socket with
a valid wire reply that carries the request's tensor back (so 16 KiB go each way); a second bare
process runs a REP echo. Over loopback TCP, in rounds rotated so load hits all alike:

- ``peer_client``: ``PeerClient.offload`` (encode, header checks on the reply, the link estimator,
  Lazy Pirate bookkeeping) to the ROUTER echo;
- ``bare_dealer``: the same exchange written with bare pyzmq: a JSON header and the raw frame out,
  ``json.loads`` and ``np.frombuffer`` on the way back, no checks;
- ``bare_req_rep``: a REQ socket sending the raw 16 KiB to the REP echo (the issue's floor).

Reported: microseconds per round trip (median and minimum over rounds) and the ratios of the
client to each floor. Prints one JSON document.

    .venv/bin/python bench/client_roundtrip.py [--kib 16] [--rounds 30] [--calls 300]
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List

import numpy as np
import zmq

from edgesplit.runtime.transport.client import PeerClient
from timing import paired_ratio

BUNDLE = "0" * 64

ECHO_SERVER = r'''
import json, sys, zmq
ctx = zmq.Context()
router = ctx.socket(zmq.ROUTER); router.setsockopt(zmq.LINGER, 0)
rep = ctx.socket(zmq.REP); rep.setsockopt(zmq.LINGER, 0)
p1 = router.bind_to_random_port("tcp://127.0.0.1"); p2 = rep.bind_to_random_port("tcp://127.0.0.1")
sys.stdout.write("%d %d\n" % (p1, p2)); sys.stdout.flush()
poller = zmq.Poller(); poller.register(router, zmq.POLLIN); poller.register(rep, zmq.POLLIN)
while True:
    events = dict(poller.poll())
    if router in events:
        frames = router.recv_multipart(copy=False)
        header = json.loads(frames[1].bytes)
        if header.get("kind") == "stop":
            break
        tensors = [{"name": "out", "dtype": "uint8", "shape": [len(f)]} for f in frames[2:3]]
        reply = {"v": 1, "id": header["id"], "status": "ok", "message": "", "exit": 0, "compute_s": 0.0,
                 "service_s": 0.0, "tensors": tensors}
        router.send_multipart([frames[0], json.dumps(reply).encode()] + frames[2:3], copy=False)
    if rep in events:
        rep.send(rep.recv(copy=False), copy=False)
'''


def per_call(fn: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def interleaved(fns: Dict[str, Callable[[], object]], rounds: int, calls: int) -> Dict[str, List[float]]:
    names = list(fns)
    for name in names:
        per_call(fns[name], calls)  # warm-up, not counted
    samples = {name: [] for name in names}  # type: Dict[str, List[float]]
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            samples[name].append(per_call(fns[name], calls))
    return samples



def bare_dealer(context: zmq.Context, endpoint: str, payload: np.ndarray) -> Callable[[], object]:
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    ids = iter(range(1, 10 ** 12))
    spec = [{"name": "x", "dtype": "uint8", "shape": [payload.size]}]

    def run() -> np.ndarray:
        request_id = next(ids)
        header = {"v": 1, "kind": "infer", "id": request_id, "bundle": BUNDLE, "cut": 1, "thresholds": None,
                  "use_exits": True, "deadline_s": 1.0, "tensors": spec}
        sock.send_multipart([json.dumps(header).encode(), payload], copy=False)
        frames = sock.recv_multipart(copy=False)
        reply = json.loads(frames[0].bytes)
        assert reply["id"] == request_id
        return np.frombuffer(frames[1].buffer, dtype=np.uint8)
    return run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kib", type=int, default=16, help="tensor size each way")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--calls", type=int, default=300, help="round trips per configuration per round")
    args = parser.parse_args(argv)

    server = subprocess.Popen([sys.executable, "-c", ECHO_SERVER], stdout=subprocess.PIPE, text=True)
    router_port, rep_port = (int(p) for p in server.stdout.readline().split())
    router_endpoint = "tcp://127.0.0.1:%d" % router_port
    context = zmq.Context()
    payload = np.arange(args.kib * 1024, dtype=np.uint8)
    client = PeerClient(router_endpoint, BUNDLE, context=context)
    req = context.socket(zmq.REQ)
    req.setsockopt(zmq.LINGER, 0)
    req.connect("tcp://127.0.0.1:%d" % rep_port)

    def offload() -> None:
        outcome = client.offload(1, {"x": payload}, deadline_s=1.0)
        assert outcome.ok and outcome.output.nbytes == payload.nbytes, outcome

    def req_rep() -> None:
        req.send(payload, copy=False)
        req.recv(copy=False)

    try:
        samples = interleaved({"peer_client": offload, "bare_dealer": bare_dealer(context, router_endpoint, payload),
                               "bare_req_rep": req_rep}, args.rounds, args.calls)
        estimate = client.link_estimate()
    finally:
        stop = context.socket(zmq.DEALER)
        stop.setsockopt(zmq.LINGER, 1000)
        stop.connect(router_endpoint)
        stop.send_multipart([json.dumps({"kind": "stop"}).encode()])
        try:
            server.wait(5)
        except subprocess.TimeoutExpired:
            server.kill()
        stop.close()
        req.close()
        client.close()
        context.term()
    print(json.dumps({
        "bench": "client_roundtrip",
        "python": platform.python_version(),
        "pyzmq": zmq.__version__,
        "cpus": os.cpu_count(),
        "kib_each_way": args.kib,
        "rounds": args.rounds,
        "calls_per_round": args.calls,
        "us_per_round_trip": {name: {"median": round(1e6 * statistics.median(v), 1), "min": round(1e6 * min(v), 1)}
                              for name, v in samples.items()},
        "ratio_peer_client_over_bare_dealer": paired_ratio(samples, "peer_client", "bare_dealer"),
        "ratio_peer_client_over_bare_req_rep": paired_ratio(samples, "peer_client", "bare_req_rep"),
        "client_link_estimate": {"bandwidth_bps": estimate.bandwidth_bps, "rtt_s": estimate.rtt_s,
                                 "samples": estimate.samples},
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
