"""A board that is never idle still measures its link (docs/link.md, "A board that is never idle").

A real ``edgesplit peer`` process behind the software link, whose rate alternates 0.25 and 0.75 Mbit/s every
2 s (20 ms RTT). The device side is connected as the pipeline connects it (``connect_peers``) and then runs
tasks back to back, as a real board whose queue never empties does: the device loop's upkeep before each task
(``maybe_probe``), then 40 ms of compute during which nothing looks at the socket (onnxruntime's run, here a
sleep: both release the GIL). Every task stays on the board, so only probes measure the link.

Before, a probe sent by the upkeep was answered during the task and read at the next task's start, up to
40 ms late: no timing, and the estimate kept its start-up value for the whole run.
"""
import time

import numpy as np
import pytest

from edgesplit.runtime.default_bundle import default_bundle_path, resolve_bundle
from edgesplit.runtime.device.pipeline import connect_peers
from edgesplit.runtime.emulation.link.recording_readers import BandwidthRecording
from edgesplit.runtime.emulation.link.relay import BackgroundLink, parse_tcp_endpoint
from edgesplit.runtime.peer.process import PeerProcess

LOW_BPS, HIGH_BPS = 0.25e6, 0.75e6
TASK_S = 0.040
RUN_S = 8.0


@pytest.fixture(scope="module")
def link():
    steps = np.array([HIGH_BPS if (second // 2) % 2 else LOW_BPS for second in range(20)])
    with PeerProcess(default_bundle_path()) as peer:
        with BackgroundLink(parse_tcp_endpoint(peer.endpoint, "peer"), BandwidthRecording(steps, "steps", "test"),
                            rtt_s=0.020) as relay:
            yield relay


def test_the_estimate_follows_the_link_while_the_board_is_never_idle(link):
    estimates = []
    with connect_peers([link.endpoint], resolve_bundle("default").wire_hash) as client:
        origin = time.monotonic()
        while time.monotonic() - origin < RUN_S:
            client.maybe_probe()  # DeviceLoop.process's upkeep, once per task
            estimates.append((time.monotonic() - origin, client.link_estimate().bandwidth_bps))
            time.sleep(TASK_S)  # the task: nothing reads the socket meanwhile
        assert client.peer_alive
        probes = sum(c.probes_sent for c in client.clients)
    later = np.array([bps for at, bps in estimates if at >= 2.0 and bps])
    assert len(later) >= 100
    # It moved with the link (before: the start-up probe's value for every task) ...
    assert len(set(later.tolist())) >= 4, sorted(set(later.tolist()))
    assert later.min() < 0.5e6 < later.max(), (later.min(), later.max())
    assert 0.5 * LOW_BPS < np.median(later) < 2 * HIGH_BPS, np.median(later)
    # ... with the probes the estimator asks for (an RTT probe and a payload probe a second), not one per task.
    assert probes < 0.25 * len(estimates), (probes, len(estimates))
