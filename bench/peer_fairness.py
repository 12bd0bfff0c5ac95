"""Can flooding devices starve a polite one? ``edgesplit peer`` with ``--flooders`` devices sending as fast as
the peer takes their requests, and one polite device asking now and then. All are separate processes.

Each flooding device is a DEALER that keeps ``--window`` requests in flight (a new one for every
answer, whatever it says), so the peer's queue stays full and its share is always used. Once every
flooder has been answered ``overloaded`` (the queue is full and the peer is refusing them), the
polite device sends ``--polite`` requests one at a time, ``--gap-s`` apart, each with a deadline of
``--answer-s``, and counts the ones answered ``ok`` within ``--answer-s`` of sending. Acceptance:
at least 18 of 20 (``--need``). The flooders' answers are counted too: they must be served as well
(a peer that answers only the polite device is not fair either).

Prints one JSON document; exit status 0 when the polite device got at least ``--need`` answers and
every flooder was both served and refused, else 1.

    .venv/bin/python bench/peer_fairness.py [--flooders 3] [--polite 20] [--max-batch 16 --batch-window-us 0]
"""
import argparse
import datetime
import json
import multiprocessing
import os
import platform
import sys
import time
from typing import Dict, List

import numpy as np

from edgesplit.runtime.bundle.store import load_bundle
from edgesplit.runtime.default_bundle import default_bundle_path
from edgesplit.runtime.peer.process import PeerProcess

_STATUSES = ("ok", "overloaded", "expired", "bad_request", "bundle_mismatch", "error")


def flooder(endpoint: str, bundle_hash: str, cut: int, live: Dict[str, np.ndarray], window: int, stop,
            counts) -> None:
    """Keep ``window`` requests in flight until ``stop``; ``counts`` (shared array) gets each status seen."""
    import zmq

    from edgesplit.runtime.transport import wire

    sock = zmq.Context().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    sent = answered = 0
    while not stop.is_set():
        while sent - answered < window:
            sent += 1
            sock.send_multipart(wire.encode_request(sent, "infer", bundle_hash, cut, 10.0, live), copy=False)
        if sock.poll(100):
            while True:
                try:
                    frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    break
                answered += 1
                status = getattr(wire.decode_reply(frames), "status", "malformed")
                index = _STATUSES.index(status) if status in _STATUSES else len(_STATUSES)
                with counts.get_lock():
                    counts[index] += 1
    sock.close()


def polite(endpoint: str, bundle_hash: str, cut: int, live: Dict[str, np.ndarray], requests: int, answer_s: float,
           gap_s: float) -> List[Dict[str, object]]:
    """``requests`` requests one at a time; each outcome: status (or ``no answer``) and seconds to answer."""
    import zmq

    from edgesplit.runtime.transport import wire

    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    outcomes = []
    for request_id in range(1, requests + 1):
        sent = time.monotonic()
        sock.send_multipart(wire.encode_request(request_id, "infer", bundle_hash, cut, answer_s, live), copy=False)
        outcome = {"status": "no answer", "seconds": None}  # type: Dict[str, object]
        while True:
            left = sent + answer_s - time.monotonic()
            if left <= 0 or not sock.poll(max(1, int(left * 1000))):
                break
            reply = wire.decode_reply(sock.recv_multipart(copy=False))
            if getattr(reply, "request_id", None) == request_id:  # an earlier, late answer is skipped
                seconds = time.monotonic() - sent
                outcome = {"status": reply.status if seconds <= answer_s else "late " + reply.status,
                           "seconds": round(seconds, 4)}
                break
        outcomes.append(outcome)
        time.sleep(gap_s)
    sock.close()
    return outcomes


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flooders", type=int, default=3)
    parser.add_argument("--window", type=int, default=256, help="requests each flooder keeps in flight")
    parser.add_argument("--polite", type=int, default=20, help="requests the polite device sends")
    parser.add_argument("--need", type=int, default=18, help="polite requests that must be answered ok in time")
    parser.add_argument("--answer-s", type=float, default=1.0, help="deadline and answer window per polite request")
    parser.add_argument("--gap-s", type=float, default=0.05, help="pause between polite requests")
    parser.add_argument("--cut", type=int, default=0, help="cut of the default bundle every device offloads at")
    parser.add_argument("--flood-timeout-s", type=float, default=60.0,
                        help="give up when the flooders are not all refused within this time")
    parser.add_argument("--max-batch", type=int, default=1, help="the peer's --max-batch (1: batching off)")
    parser.add_argument("--batch-window-us", type=int, default=0, help="the peer's --batch-window-us")
    args = parser.parse_args(argv)
    peer_flags = ["--max-batch", str(args.max_batch), "--batch-window-us", str(args.batch_window_us)]
    bundle_dir = str(default_bundle_path())
    bundle = load_bundle(bundle_dir)
    spec = bundle.manifest.cuts[args.cut].tensors
    rng = np.random.default_rng(0)
    live = {t.name: rng.random([1] + list(t.shape[1:])).astype(t.dtype) for t in spec}
    ctx = multiprocessing.get_context("fork")
    stop = ctx.Event()
    counts = [ctx.Array("l", len(_STATUSES) + 1) for _ in range(args.flooders)]
    peer = PeerProcess(bundle_dir, extra=peer_flags)
    floods = [ctx.Process(target=flooder, args=(peer.endpoint, bundle.wire_hash, args.cut, live, args.window, stop,
                                               c)) for c in counts]
    refused_after_s = None
    try:
        for proc in floods:
            proc.start()
        started = time.monotonic()
        overloaded = _STATUSES.index("overloaded")
        while not all(c[overloaded] > 0 for c in counts):
            if time.monotonic() - started > args.flood_timeout_s:
                break
            time.sleep(0.05)
        else:
            refused_after_s = round(time.monotonic() - started, 3)
        outcomes = polite(peer.endpoint, bundle.wire_hash, args.cut, live, args.polite, args.answer_s, args.gap_s)
    finally:
        stop.set()
        for proc in floods:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
        code, out, _ = peer.stop()
    answered = sum(1 for o in outcomes if o["status"] == "ok")
    flood = [{s: c[i] for i, s in enumerate(_STATUSES + ("malformed",)) if c[i]} for c in counts]
    stopped = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    passed = (answered >= args.need and refused_after_s is not None
              and all(f.get("ok", 0) > 0 and f.get("overloaded", 0) > 0 for f in flood))
    print(json.dumps({
        "bench": "peer_fairness", "date": datetime.date.today().isoformat(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "loadavg_at_start": os.getloadavg()},
        "settings": dict(vars(args), peer_flags=peer_flags),
        "polite_ok_within_answer_s": answered, "polite_requests": args.polite, "need": args.need, "passed": passed,
        "flood_refused_after_s": refused_after_s, "polite": outcomes, "flooders": flood,
        "peer_exit": code, "peer_stats": stopped[-1] if stopped else None}, indent=1))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
