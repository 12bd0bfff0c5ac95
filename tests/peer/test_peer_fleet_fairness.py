"""Three flooding devices, each its own process, cannot starve a fourth, polite one: it gets at least 18 of its
20 requests answered ok within 1 s each, while the flooders are both served and refused ('overloaded').
Runs bench/peer_fairness.py (real peer, real device processes) and counts its answers."""
import json
import subprocess
import sys

import pytest

from support.daemon_process import ROOT


@pytest.mark.parametrize("peer_flags", [[], ["--max-batch", "8", "--batch-window-us", "2000"]],
                         ids=["one-at-a-time", "batching"])
def test_three_flooding_device_processes_leave_a_polite_one_its_answers(peer_flags):
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "peer_fairness.py"), "--flooders", "3",
                           "--polite", "20", "--need", "18", "--answer-s", "1.0"] + peer_flags,
                          capture_output=True, text=True, timeout=300)
    assert done.stdout.strip(), done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["flood_refused_after_s"] is not None, report  # the queue was full before the polite device asked
    assert report["polite_ok_within_answer_s"] >= 18, report["polite"]
    assert len(report["flooders"]) == 3, report["flooders"]
    for flood in report["flooders"]:
        assert flood.get("ok", 0) > 0 and flood.get("overloaded", 0) > 0, report["flooders"]
    assert report["peer_exit"] == 0 and done.returncode == 0, report
