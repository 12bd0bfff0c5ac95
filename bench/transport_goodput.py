"""Transport goodput: payload bytes per second through the real wire protocol and peer.

    python bench/transport_goodput.py [--rate-mbit 20] [--repeats 5] [--skip-kernel] [--skip-software]

Each measurement is a probe carrying one uint8 payload of the given size to a real peer (the same
ROUTER loop and validation that serve offloads) and its small reply. Goodput is
``8 x payload / (round trip - peer service time)``; the median over the repeats is reported.

Legs, in one run, printed as one JSON document:
- ``loopback``: peer thread and client in this process over tcp://127.0.0.1;
- ``software_link``: through ``edgesplit link``'s relay replaying a constant ``--rate-mbit`` bandwidth recording
  (base RTT 0): how close the no-root emulation comes to its configured rate;
- ``kernel_tbf`` (root only): peer process in one network namespace, client in another, veth
  shaped with ``tc tbf`` at ``--rate-mbit``. Acceptance: goodput / rate >= 0.9 for payloads of
  64 KiB and more.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys

SIZES = [4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20, 8 << 20]
ACCEPT_FROM_BYTES = 64 << 10
ACCEPT_RATIO = 0.9


def measure(endpoint, bundle_hash, sizes, repeats, timeout_s=60.0):
    """Median goodput per payload size, measured from this process."""
    from edgesplit.runtime.transport.client import PeerClient

    rows = []
    with PeerClient(endpoint, bundle_hash) as client:
        for _ in range(3):
            client.probe(timeout_s)  # connect and warm up
        for size in sizes:
            client.probe(timeout_s, payload_bytes=size)  # warm the TCP window for this size
            goodputs, statuses = [], []
            for _ in range(repeats):
                outcome = client.probe(timeout_s, payload_bytes=size)
                statuses.append(outcome.status)
                if outcome.ok and outcome.transfer_s:
                    goodputs.append(8.0 * size / outcome.transfer_s)
            rows.append({"payload_bytes": size, "goodput_mbit": round(statistics.median(goodputs) / 1e6, 3),
                         "min_mbit": round(min(goodputs) / 1e6, 3), "max_mbit": round(max(goodputs) / 1e6, 3),
                         "repeats": len(goodputs), "failed": sum(s != "ok" for s in statuses)})
    return rows


def _with_ratio(rows, rate_bps):
    for row in rows:
        row["ratio_to_rate"] = round(row["goodput_mbit"] * 1e6 / rate_bps, 3)
    big = [r["ratio_to_rate"] for r in rows if r["payload_bytes"] >= ACCEPT_FROM_BYTES]
    return {"rate_mbit": rate_bps / 1e6, "rows": rows, "min_ratio_from_64KiB": min(big) if big else None,
            "accepted": bool(big) and min(big) >= ACCEPT_RATIO}


def loopback_leg(bundle, repeats):
    from edgesplit.runtime.executor.executor import Executor
    from edgesplit.runtime.peer.background import BackgroundPeer

    with BackgroundPeer(Executor(bundle)) as peer:
        return {"rows": measure(peer.endpoint, bundle.hash, SIZES, repeats)}


def software_leg(bundle, rate_bps, repeats):
    from edgesplit.runtime.executor.executor import Executor
    from edgesplit.runtime.emulation.link.relay import BackgroundLink, parse_tcp_endpoint
    from edgesplit.runtime.emulation.link.recording_readers import constant_recording
    from edgesplit.runtime.peer.background import BackgroundPeer

    with BackgroundPeer(Executor(bundle)) as peer:
        target = parse_tcp_endpoint(peer.endpoint, "peer endpoint")
        with BackgroundLink(target, constant_recording(rate_bps), rtt_s=0.0) as link:
            return _with_ratio(measure(link.endpoint, bundle.hash, SIZES, repeats), rate_bps)


def kernel_leg(bundle, rate_bps, repeats):
    from edgesplit.runtime.emulation.link.kernel_shaping import NamespacePair, unavailable_reason
    from edgesplit.runtime.peer.process import PeerProcess

    reason = unavailable_reason()
    if reason is not None:
        return {"skipped": reason}
    with NamespacePair(tag="b") as pair:
        pair.set_rate(rate_bps)
        # A private namespace pair: no keys needed.
        with PeerProcess(bundle.root, bind="tcp://%s:5555" % pair.peer_ip, extra=["--insecure"],
                         launcher=lambda argv: pair.exec_args("peer", argv)) as peer:
            client = subprocess.run(pair.exec_args("device", [sys.executable, __file__, "--client", peer.endpoint,
                                                              bundle.hash, "--repeats", str(repeats)]),
                                    capture_output=True, text=True, timeout=600)
            if client.returncode != 0:
                raise RuntimeError("client in the device namespace failed: %s" % client.stderr[-2000:])
            rows = json.loads(client.stdout)
    result = _with_ratio(rows, rate_bps)
    result["shaping"] = "tc tbf on both veth ends, burst max(16 KiB, rate/100), latency 200ms"
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate-mbit", type=float, default=20.0, help="shaped rate in Mbit/s (default 20)")
    parser.add_argument("--repeats", type=int, default=5, help="measurements per size (median reported)")
    parser.add_argument("--skip-kernel", action="store_true", help="leave out the tbf leg")
    parser.add_argument("--skip-software", action="store_true", help="leave out the software-link leg")
    parser.add_argument("--client", nargs=2, metavar=("ENDPOINT", "BUNDLE_HASH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:  # inside the device namespace: measure and print the rows
        print(json.dumps(measure(args.client[0], args.client[1], SIZES, args.repeats)))
        return 0
    from edgesplit.runtime.bundle.store import load_bundle
    from edgesplit.runtime.default_bundle import default_bundle_path

    rate = args.rate_mbit * 1e6
    # Probes carry a raw payload and never run the model: any bundle serves; the embedded one ships.
    bundle = load_bundle(default_bundle_path())
    report = {"bench": "transport_goodput", "python": platform.python_version(), "machine": platform.machine(),
              "cpus": os.cpu_count(), "repeats": args.repeats, "bundle": "embedded default",
              "goodput": "8 x payload / (round trip - peer service time), median of repeats",
              "loopback": loopback_leg(bundle, args.repeats)}
    if not args.skip_software:
        report["software_link"] = software_leg(bundle, rate, max(1, min(args.repeats, 3)))
    if not args.skip_kernel:
        report["kernel_tbf"] = kernel_leg(bundle, rate, max(1, min(args.repeats, 3)))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
