"""Mahimahi packet-delivery traces (``.up``/``.down``) as bandwidth recordings: one line per 1500-byte delivery opportunity.

The files here are generated from a documented rule (mahimahi's own format: an integer millisecond
per line, a repeated millisecond is several packets in that millisecond, the last timestamp is the
period after which the file loops), so the expected rates are known exactly. A real mahimahi file is
checked too when the shared trace folder beside the checkout has one.
"""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgesplit.runtime.emulation.link.recording_readers import PACKET_BITS, RecordingError, read_recording

REPO = Path(__file__).resolve().parents[2]
SHARED_TRACES = [REPO.parent / "shared" / "traces", Path("/work/shared/traces")]


def _mahimahi_lines(packets_per_ms_by_second):
    """Second k carries ``r`` packets in every millisecond (r >= 1), or one every ``1/r`` ms (r < 1).

    Millisecond m of second k is the timestamp ``1000 k + m`` for m = 1..1000, so the last line is
    the period (3 seconds -> 3000) and the file loops after it, as mahimahi replays it.
    """
    lines = []
    for k, rate in enumerate(packets_per_ms_by_second):
        every = 1 if rate >= 1 else int(round(1 / rate))
        copies = int(rate) if rate >= 1 else 1
        for m in range(every, 1001, every):
            lines.extend([str(1000 * k + m)] * copies)
    return "\n".join(lines) + "\n"


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_rates_per_second_from_delivery_opportunities(tmp_path):
    # 1 packet/ms = 1500 B * 8 * 1000 = 12 Mbit/s; 2/ms = 24 Mbit/s; one per 4 ms = 3 Mbit/s.
    path = _write(tmp_path, "lte.down", _mahimahi_lines([1, 2, 0.25]))
    trace = read_recording(path, "mahimahi")
    assert PACKET_BITS == 1500 * 8
    assert trace.format == "mahimahi"
    np.testing.assert_allclose(trace.bps, [12e6, 24e6, 3e6])
    assert trace.rate_at(3.5) == 12e6  # the file loops after its last timestamp


def test_single_line_trace_is_a_constant_link(tmp_path):
    # mahimahi's documented constant 12 Mbit/s link: a file holding the single line "1".
    trace = read_recording(_write(tmp_path, "12mbps.up", "1\n"))
    assert trace.format == "mahimahi"
    np.testing.assert_allclose(trace.bps, [12e6])


def test_sub_second_period_repeats_within_the_step(tmp_path):
    # 3 packets every 250 ms period -> 12 packets per second = 144 kbit/s.
    trace = read_recording(_write(tmp_path, "slow.up", "10\n100\n250\n"))
    np.testing.assert_allclose(trace.bps, [3 * PACKET_BITS * 4])


def test_partial_last_second_is_dropped_like_other_formats(tmp_path):
    # Period 2500 ms: two whole seconds; the half second after them is not a whole step.
    text = _mahimahi_lines([1, 1]) + "".join("%d\n" % t for t in range(2001, 2501))
    trace = read_recording(_write(tmp_path, "t.up", text))
    np.testing.assert_allclose(trace.bps, [12e6, 12e6])


@pytest.mark.parametrize("name", ["cellular.up", "cellular.down", "no_suffix"])
def test_auto_detection_by_suffix_or_single_integer_column(tmp_path, name):
    trace = read_recording(_write(tmp_path, name, _mahimahi_lines([1, 2])))
    assert trace.format == "mahimahi"


@pytest.mark.parametrize("text, message", [
    ("5\n3\n", r":2: time goes backwards \(3 ms after 5 ms\)"),
    ("1\n1.5\n", r":2: expected one integer millisecond"),
    ("1\n2 3\n", r":2: expected one integer millisecond"),
    ("-1\n2\n", r":1: .*negative"),
    ("0\n0\n", r"lasts 0 ms"),
    ("\n\n", r"no delivery opportunities"),
])
def test_bad_mahimahi_files_name_file_and_line(tmp_path, text, message):
    path = _write(tmp_path, "bad.up", text)
    with pytest.raises(RecordingError, match=message) as caught:
        read_recording(path, "mahimahi")
    assert str(path) in str(caught.value)


def test_link_command_reads_mahimahi_with_format_flag(tmp_path):
    # A file auto-detection would read as another format is still read as mahimahi when told so.
    path = _write(tmp_path, "trace.txt", _mahimahi_lines([2]))
    proc = subprocess.Popen([sys.executable, "-m", "edgesplit.runtime.cli", "link", "--recording", str(path),
                             "--format", "mahimahi", "--listen", "tcp://127.0.0.1:0", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready = json.loads(proc.stdout.readline())
        assert ready["recording"]["format"] == "mahimahi" and ready["recording"]["mean_mbps"] == 24.0
    finally:
        proc.terminate()
        proc.wait(10)


def _real_mahimahi_files():
    for root in SHARED_TRACES:
        if root.is_dir():
            found = sorted(list(root.glob("*/*.up")) + list(root.glob("*/*.down")))
            if found:
                return found
    return []


@pytest.mark.skipif(not _real_mahimahi_files(), reason="no mahimahi .up/.down file in the shared trace folder")
def test_real_mahimahi_file_reads_to_plausible_rates():
    path = _real_mahimahi_files()[0]
    trace = read_recording(path)
    timestamps = np.array(path.read_text().split(), dtype=np.int64)
    assert trace.format == "mahimahi" and len(trace.bps) == max(1, int(timestamps[-1]) // 1000)
    # Every whole second's deliveries are counted once: the mean rate is the packets over the whole seconds.
    whole = int(np.sum(timestamps <= 1000 * len(trace.bps)))
    assert trace.bps.sum() == pytest.approx(whole * PACKET_BITS, rel=0.01)
