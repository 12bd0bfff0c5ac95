"""Reading mahimahi recordings: seconds per million delivery opportunities, fast path vs line by line.

    python bench/mahimahi_reader.py [--mbps 100] [--seconds 600]

Writes a mahimahi file of a constant ``--mbps`` link (one line per 1500-byte opportunity, as mahimahi
does) lasting ``--seconds``, reads it with ``read_recording`` (the numpy fast path for a clean file),
then the same file with one bad line at the end (which sends the reader through the line-by-line
path that names the line), and prints one JSON document. A 100 Mbit/s, 10-minute file has 5 million
lines; the ratio says what the fast path buys.
"""
import argparse
import json
import tempfile
import time
from pathlib import Path

from edgesplit.runtime.emulation.link.recording_readers import PACKET_BITS, RecordingError, read_recording


def _write(path: Path, mbps: float, seconds: int, tail: str = "") -> int:
    per_second = int(round(mbps * 1e6 / PACKET_BITS))
    lines = []
    for k in range(seconds):
        # Spread the second's packets over its milliseconds 1..1000 (several per ms when above 12 Mbit/s).
        lines.extend(str(1000 * k + 1 + (i * 1000) // per_second) for i in range(per_second))
    path.write_text("\n".join(lines) + "\n" + tail)
    return len(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mbps", type=float, default=100.0)
    parser.add_argument("--seconds", type=int, default=600)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        clean, bad = Path(work) / "link.down", Path(work) / "bad.down"
        lines = _write(clean, args.mbps, args.seconds)
        _write(bad, args.mbps, args.seconds, tail="12.5\n")
        start = time.perf_counter()
        recording = read_recording(clean)
        fast_s = time.perf_counter() - start
        start = time.perf_counter()
        try:
            read_recording(bad)
            raise SystemExit("the bad file was accepted")
        except RecordingError as exc:
            message = str(exc)
        slow_s = time.perf_counter() - start
    print(json.dumps({"lines": lines, "steps": len(recording.bps),
                      "mean_mbps": round(float(recording.bps.mean()) / 1e6, 3),
                      "fast_path_s": round(fast_s, 3), "fast_s_per_million_lines": round(fast_s / lines * 1e6, 3),
                      "bad_file_s": round(slow_s, 3), "bad_over_fast": round(slow_s / fast_s, 2),
                      "bad_file_error": message[-80:]}, indent=2))


if __name__ == "__main__":
    main()
