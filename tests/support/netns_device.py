"""Device side of the kernel-shaped link test, run inside the device namespace.

Reads commands on stdin, one per line: ``run N PAYLOAD_BYTES`` makes N real offloads (cut 0) and N
payload probes, then prints one JSON line with what happened and the client's link estimate.
"""
import json
import sys

import numpy as np

from edgesplit.runtime.transport.client import PeerClient


def main(endpoint, bundle_hash):
    client = PeerClient(endpoint, bundle_hash, probe_backoff_s=(0.1, 0.5))
    client.probe(10.0)
    for _ in range(3):
        client.probe(10.0)  # RTT samples for the base RTT
    print(json.dumps({"event": "ready"}), flush=True)
    for line in sys.stdin:
        parts = line.split()
        if not parts or parts[0] != "run":
            break
        count, payload = int(parts[1]), int(parts[2])
        statuses = []
        for _ in range(count):
            statuses.append(client.offload(0, {"x": np.ones((1, 4), np.float32)}, 5.0, thresholds=[0.0]).status)
            statuses.append(client.probe(10.0, payload_bytes=payload).status)
        estimate = client.link_estimate()
        print(json.dumps({"statuses": statuses, "bandwidth_bps": estimate.bandwidth_bps,
                          "base_rtt_s": estimate.base_rtt_s, "peer_alive": client.peer_alive}), flush=True)
    client.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
