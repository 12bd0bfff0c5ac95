"""Bandwidth recording readers: each dataset's layout and unit becomes bits per second per 1-second step."""
import json
import re

import numpy as np
import pytest

from edgesplit.runtime.emulation.link.shipped import resolve_recording, shipped_recordings
from edgesplit.runtime.emulation.link.recording_readers import RecordingError, read_recording, resample


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_norway_cooked_mbps_with_irregular_spacing(tmp_path):
    # Layout of cooked_3gp/norway_*: time_s  Mbit/s, ~0.3-1.2 s apart.
    path = _write(tmp_path, "norway_bus_1", "0.0\t4.0\n0.5\t2.0\n1.0\t3.0\n2.5\t1.0\n3.0\t1.0\n")
    recording = read_recording(path, "norway")
    # [0,1): half at 4 and half at 2 -> 3; [1,2): 3; [2,3): half 3 half 1 -> 2.
    np.testing.assert_allclose(recording.bps, [3e6, 3e6, 2e6])


def test_fcc_five_second_samples_hold_for_five_steps(tmp_path):
    path = _write(tmp_path, "trace_1_http---x", "0.0 0.890992\n5.0 0.88812\n10.0 0.5\n")
    recording = read_recording(path)
    assert recording.format == "cooked" and len(recording.bps) == 15
    np.testing.assert_allclose(recording.bps[:5], 0.890992e6)
    np.testing.assert_allclose(recording.bps[10:], 0.5e6)


def test_ghent_raw_log_bytes_over_duration(tmp_path):
    rows = ["1453121790686 %d 51.03 3.71 %d %d" % (1000 * i, b, d)
            for i, (b, d) in enumerate([(1250000, 1000), (2500000, 1000), (625000, 500)])]
    recording = read_recording(_write(tmp_path, "report_bus_0001.log", "\n".join(rows)), "ghent")
    np.testing.assert_allclose(recording.bps, [10e6, 20e6, 10e6])


def test_ghent_recoco_json_capacity_is_bytes_per_ms(tmp_path):
    data = {"uplink": {"trace_pattern": [{"time": 0, "duration": 1000, "capacity": 1250.0},
                                         {"time": 1, "duration": 1000, "capacity": 2500.0}]}}
    recording = read_recording(_write(tmp_path, "report_bus_0001.json", json.dumps(data)))
    np.testing.assert_allclose(recording.bps, [10e6, 20e6])


def test_multipath_csv_bytes_per_second(tmp_path):
    recording = read_recording(_write(tmp_path, "11_1_wifi.csv", "1,5431368\n2,6703920\n3,0\n"))
    assert recording.format == "multipath"
    np.testing.assert_allclose(recording.bps, [5431368 * 8, 6703920 * 8, 0])


@pytest.mark.parametrize("text, fmt, message", [
    ("0 1\n1 x\n", "norway", ":2: expected numbers"),
    ("0 1\n", "norway", "at least 2 samples"),
    ("0 1\n1 2 3\n", "norway", ":2: expected 2 columns"),
    ("1 1\n0 2\n", "norway", r"t:2: time goes backwards"),
    ("0 1\n1 -2\n", "norway", r"t:2: negative throughput"),
    ("# comment\n0 1\n\n1 2\n2 -2\n", "norway", r"t:5: negative throughput"),
    ("1,5\n2,-7\n", "multipath", r"t:2: negative throughput"),
    ("0 0 0 0 100 10\n0 1000 0 0 100 0\n", "ghent", r"t:2: duration_ms must be positive"),
    ("0 1 2\n1 2 3\n", "auto", "cannot tell the recording format"),
    ("{\"downlink\": {}}", "ghent", "ReCoCo JSON"),
    ("0 1\n1 2\n", "wifi", "unknown recording format"),
    ("time,mbps\n0,100000\n1,200000\n", "auto", r":1: expected numbers, got 'time,mbps' \(a header line\? start it "
                                                 "with '#'"),
    ("0 1\n1 x\n", "norway", r":2: expected numbers, got '1 x'$"),  # the header hint only for a first line
    ("0,1.5\n1,2.0\n2,1.0\n", "auto", "every rate is under 1000 bytes/s.*Mbit/s, write two whitespace-separated"),
    ("0 1 2\n1 2 3\n", "auto", "two whitespace-separated columns, seconds and Mbit/s"),
])
def test_bad_recordings_name_file_and_line(tmp_path, text, fmt, message):
    with pytest.raises(RecordingError, match=message):
        read_recording(_write(tmp_path, "t", text), fmt)
    if message.startswith("t:"):  # the file named with its line, as for the other problems
        with pytest.raises(RecordingError, match="^" + re.escape(str(tmp_path / message))):
            read_recording(_write(tmp_path, "t", text), fmt)


def test_rates_that_look_like_mbps_in_a_comma_file_are_read_as_bytes_when_the_format_is_named(tmp_path):
    recording = read_recording(_write(tmp_path, "t.csv", "0,1.5\n1,2.0\n"), "multipath")
    np.testing.assert_allclose(recording.bps, [12.0, 16.0])


def test_a_binary_file_is_named_as_not_text(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b"\x00\x98\xff binary")
    with pytest.raises(RecordingError, match=r"t.csv: not a text file \(byte 0x98 at offset 1 is not UTF-8\)"):
        read_recording(path)


def test_resample_conserves_bits():
    times, mbps = np.array([0.0, 0.3, 1.7, 2.2, 4.0]), np.array([1.0, 5.0, 2.0, 0.0, 3.0])
    out = resample(times, mbps)
    spacing = np.median(np.diff(times))
    covered = np.append(times, times[-1] + spacing)
    total = float(np.sum(mbps * np.diff(covered)))
    whole = int(np.floor(covered[-1] - covered[0]))
    assert len(out) == whole and out.sum() <= total + 1e-9


def test_shipped_recordings_read_and_vary():
    names = shipped_recordings()
    assert {"norway_car_3", "ghent_bus_0001"} <= set(names)
    for name in names:
        recording = read_recording(resolve_recording(name))
        assert len(recording.bps) > 200 and recording.bps.max() > 4 * recording.bps.min() > 0
    with pytest.raises(RecordingError, match="shipped: "):
        resolve_recording("no_such_recording")


def test_a_folder_given_as_a_recording_is_named_as_a_folder(tmp_path):
    with pytest.raises(RecordingError, match="is a folder, not a recording file: give one file in it"):
        resolve_recording(str(tmp_path))


def test_link_lists_the_shipped_recordings_under_the_new_and_the_old_flag():
    import subprocess
    import sys

    command = [sys.executable, "-m", "edgesplit.runtime.cli", "link", "--json"]
    new = subprocess.run(command + ["--list-recordings"], capture_output=True, text=True, timeout=60)
    old = subprocess.run(command + ["--list-traces"], capture_output=True, text=True, timeout=60)
    assert new.returncode == old.returncode == 0, new.stderr + old.stderr
    assert json.loads(new.stdout) == json.loads(old.stdout)
    assert {r["name"] for r in json.loads(new.stdout)} == set(shipped_recordings())


def test_link_describe_reads_a_recording_file_and_exits_without_relaying(tmp_path):
    import subprocess
    import sys

    recording = tmp_path / "cellular.down"
    recording.write_text("\n".join(str(ms) for ms in range(4, 3001, 4)) + "\n")  # one packet every 4 ms: 3 Mbit/s
    command = [sys.executable, "-m", "edgesplit.runtime.cli", "link", "--recording", str(recording), "--describe"]
    done = subprocess.run(command + ["--json"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["format"] == "mahimahi" and summary["steps"] == 3 and summary["mean_mbps"] == pytest.approx(3.0)
    text = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert text.returncode == 0 and "mahimahi" in text.stdout and "3.0" in text.stdout, text.stderr
    bad = subprocess.run(command[:-3] + ["--recording", str(tmp_path), "--describe"], capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode != 0 and "is a folder" in bad.stderr
