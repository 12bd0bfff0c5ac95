"""How soon a pool front end whose Ray Serve application is deleted says so: the time from the end of ``serve.delete``
to the first probe the front end answers ``overloaded`` (what marks it down at the devices, which then use their next
front end). A real local Ray head, one ``edgesplit pool`` front end on an application of its own per trial, idle for
a few seconds before the delete (so its health watcher is in its periodic mode, as under light load); the probes are
``PeerClient.probe`` every 0.1 s. Prints one JSON document.

With ``--load-hz R`` a device offloads at R requests a second (cut 2 of the default bundle, ``--deadline-s`` each) from
before the delete until a few seconds after the first ``overloaded``: the report counts, per trial, the offloads that
waited out their deadline (no answer, or ``expired``) against those answered ``overloaded`` (the device then finishes
the task locally at once) and ``ok``.

    python bench/pool_unavailable.py [--trials 3] [--load-hz 10 --deadline-s 1]
"""
import argparse
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

from report import emit, header

from edgesplit.runtime.bundle.store import load_bundle
from edgesplit.runtime.default_bundle import default_bundle_path, load_heldout
from edgesplit.runtime.executor.executor import Executor
from edgesplit.runtime.peer.process import PeerProcess
from edgesplit.runtime.pool.local_cluster import RayHead
from edgesplit.runtime.transport.client import PeerClient


def front_end(address: str, application: str) -> PeerProcess:
    argv = [sys.executable, "-m", "edgesplit.runtime.cli", "pool", "default", "--ray-address", address, "--bind",
            "tcp://127.0.0.1:*", "--json", "--application", application, "--replicas", "1"]
    return PeerProcess("default", launcher=lambda _: argv, start_timeout_s=300)


def delete(address: str, application: str) -> None:
    script = ("import ray; from ray import serve; ray.init(address=%r, namespace='edgesplit', log_to_driver=False); "
              "serve.delete(%r)" % (address, application))
    subprocess.run([sys.executable, "-c", script], check=True, timeout=180, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


class Load:
    """A device offloading at ``hz`` on its own connection until ``stop()``; each outcome with its send time."""

    def __init__(self, endpoint: str, wire_hash: str, live, hz: float, deadline_s: float):
        self.outcomes = []  # (sent at, monotonic; status as the device saw it; seconds until it knew)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(endpoint, wire_hash, live, hz, deadline_s), daemon=True)
        self._thread.start()

    def _run(self, endpoint, wire_hash, live, hz, deadline_s):
        with PeerClient(endpoint, wire_hash) as client:
            while not self._stop.is_set():
                sent = time.monotonic()
                outcome = client.offload(2, live, deadline_s=deadline_s, use_exits=False)
                self.outcomes.append((sent, outcome.peer_status or outcome.status, time.monotonic() - sent))
                self._stop.wait(max(0.0, 1.0 / hz - (time.monotonic() - sent)))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


def summarize_load(outcomes, deleted_from: float, deadline_s: float) -> dict:
    """The offloads sent from the delete's start on: how each ended, and how many waited out their deadline."""
    after = [(status, took) for sent, status, took in outcomes if sent >= deleted_from]
    waited = [took for status, took in after if status not in ("ok", "overloaded") and took >= 0.9 * deadline_s]
    return {"offloads_from_delete": len(after), "statuses": dict(Counter(status for status, _ in after)),
            "waited_out_deadline": len(waited),
            "overloaded_answered_within_s": round(max([t for s, t in after if s == "overloaded"] or [0.0]), 3)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--idle-s", type=float, default=3.0, help="seconds without requests before the delete")
    parser.add_argument("--load-hz", type=float, default=0.0, help="a device offloading at this rate meanwhile (0: none)")
    parser.add_argument("--deadline-s", type=float, default=1.0, help="each offload's deadline with --load-hz")
    parser.add_argument("--out", help="also write the JSON document here")
    args = parser.parse_args(argv)
    report = dict(header("pool_unavailable"), load_hz=args.load_hz, deadline_s=args.deadline_s, trials=[])
    bundle = load_bundle(default_bundle_path())
    live = Executor(bundle).run(load_heldout()[0][:1], use_exits=False, stop_at_cut=2).live
    head = RayHead(num_cpus=2)
    try:
        for trial in range(args.trials):
            name = "edgesplit-unavailable-%d" % trial
            front = front_end(head.address, name)
            try:
                with PeerClient(front.endpoint, bundle.wire_hash) as client:
                    assert client.probe(timeout_s=10.0).ok, "the front end does not answer probes"
                    load = Load(front.endpoint, bundle.wire_hash, live, args.load_hz, args.deadline_s) \
                        if args.load_hz > 0 else None
                    time.sleep(args.idle_s)
                    started = time.monotonic()
                    delete(head.address, name)
                    deleted = time.monotonic()
                    probes = 1
                    while client.probe(timeout_s=5.0).peer_status != "overloaded":
                        probes += 1
                        time.sleep(0.1)
                    trial = {"delete_s": round(deleted - started, 3),
                             "overloaded_after_delete_s": round(time.monotonic() - deleted, 3), "probes": probes}
                    if load is not None:
                        time.sleep(2.0 + args.deadline_s)
                        load.stop()
                        trial["load"] = summarize_load(load.outcomes, started, args.deadline_s)
                    report["trials"].append(trial)
            finally:
                front.stop(signal.SIGKILL)
    finally:
        head.stop()
    emit(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
