"""How soon a pool front end whose Ray Serve application is deleted says so: the time from the end of ``serve.delete``
to the first probe the front end answers ``overloaded`` (what marks it down at the devices, which then use their next
front end). A real local Ray head, one ``edgesplit pool`` front end on an application of its own per trial, idle for
a few seconds before the delete (so its health watcher is in its periodic mode, as under light load); the probes are
``PeerClient.probe`` every 0.1 s. Prints one JSON document.

    python bench/pool_unavailable.py [--trials 3]
"""
import argparse
import signal
import subprocess
import sys
import time

from report import emit, header

from edgesplit.runtime.bundle.store import load_bundle
from edgesplit.runtime.default_bundle import default_bundle_path
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--idle-s", type=float, default=3.0, help="seconds without requests before the delete")
    parser.add_argument("--out", help="also write the JSON document here")
    args = parser.parse_args(argv)
    report = dict(header("pool_unavailable"), trials=[])
    bundle = load_bundle(default_bundle_path())
    head = RayHead(num_cpus=2)
    try:
        for trial in range(args.trials):
            name = "edgesplit-unavailable-%d" % trial
            front = front_end(head.address, name)
            try:
                with PeerClient(front.endpoint, bundle.wire_hash) as client:
                    assert client.probe(timeout_s=10.0).ok, "the front end does not answer probes"
                    time.sleep(args.idle_s)
                    started = time.monotonic()
                    delete(head.address, name)
                    deleted = time.monotonic()
                    probes = 1
                    while client.probe(timeout_s=5.0).peer_status != "overloaded":
                        probes += 1
                        time.sleep(0.1)
                    report["trials"].append({"delete_s": round(deleted - started, 3),
                                             "overloaded_after_delete_s": round(time.monotonic() - deleted, 3),
                                             "probes": probes})
            finally:
                front.stop(signal.SIGKILL)
    finally:
        head.stop()
    emit(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
