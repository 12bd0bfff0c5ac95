"""Readers for bandwidth recordings (recorded link capacity over time), each returning bits per second at 1-second steps.

The public datasets disagree on units and spacing, so every reader converts explicitly:

============  =========================================  ==================================
format        file layout                                 unit of the value column
============  =========================================  ==================================
fcc, norway   ``time_s  throughput`` (Pensieve cooked)    Mbit/s (FCC: 5 s spacing; Norway:
              whitespace separated                        irregular 0.3-1.2 s spacing)
ghent         cooked: as above                            Mbit/s
              raw UGent log: ``epoch_ms elapsed_ms lat    bytes in the interval over
              lon bytes duration_ms``                     duration_ms
              ReCoCo JSON: ``uplink.trace_pattern[]``     ``capacity`` is bytes per ms
              with ``time`` (s), ``capacity``
multipath     CSV ``time_s,bytes_per_second``             bytes/s, 1-s bins
mahimahi      ``.up``/``.down``: one integer per line, the    one 1500-byte packet per line;
              millisecond of a delivery opportunity       the file loops after its last
              (a repeated millisecond: several packets)   timestamp (the period)
============  =========================================  ==================================

Samples are held until the next one (a piecewise-constant rate) and averaged over each 1-second
step, so irregular spacings and 5-second samples all become the same kind of series. Mahimahi files
are counted instead: the packets delivered in each second times 12,000 bits (see ``_read_mahimahi``).
"""
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from edgesplit.runtime.errors import EdgesplitError

FORMATS = ("auto", "fcc", "ghent", "norway", "multipath", "mahimahi")
# What "auto" reports for the Pensieve layout, which cannot tell FCC, Norway and cooked Ghent apart.
COOKED = "cooked"
STEP_S = 1.0
PACKET_BITS = 1500 * 8  # mahimahi: every delivery opportunity carries one MTU-sized packet
MAHIMAHI_SUFFIXES = (".up", ".down")
# A comma file detected as multipath whose every rate is under this (1 kB/s) is more likely Mbit/s in the wrong layout.
MULTIPATH_IMPLAUSIBLE_BPS = 8000.0


class RecordingError(EdgesplitError):
    """A bandwidth recording file cannot be read: the message names the file and line."""


@dataclass(frozen=True)
class BandwidthRecording:
    """Link capacity in bits per second for consecutive steps of ``step_s`` seconds."""

    bps: np.ndarray
    source: str
    format: str
    step_s: float = STEP_S

    @property
    def duration_s(self) -> float:
        return len(self.bps) * self.step_s

    def rate_at(self, t: float) -> float:
        """Capacity at ``t`` seconds into the recording; the recording repeats when it runs out."""
        return float(self.bps[int(math.floor(t / self.step_s)) % len(self.bps)])

    def summary(self) -> dict:
        return {"source": self.source, "format": self.format, "steps": int(len(self.bps)), "step_s": self.step_s,
                "mean_mbps": round(float(self.bps.mean()) / 1e6, 3), "min_mbps": round(float(self.bps.min()) / 1e6, 3),
                "max_mbps": round(float(self.bps.max()) / 1e6, 3)}


def resample(times: Sequence[float], bps: Sequence[float], step_s: float = STEP_S) -> np.ndarray:
    """Time-weighted mean of a piecewise-constant rate over consecutive steps from the first sample.

    Sample ``i`` holds from ``times[i]`` to ``times[i+1]``; the last one holds for the median spacing.
    """
    t = np.asarray(times, dtype=np.float64)
    v = np.asarray(bps, dtype=np.float64)
    spacing = float(np.median(np.diff(t))) if len(t) > 1 else step_s
    edges = np.append(t, t[-1] + max(spacing, 1e-9))
    # Cumulative bits at each sample edge; a piecewise-linear function of time.
    cumulative = np.concatenate([[0.0], np.cumsum(v * np.diff(edges))])
    # Whole steps only: a partial last step would be diluted by time the recording does not cover.
    steps = max(1, int(math.floor((edges[-1] - edges[0]) / step_s + 1e-9)))
    bounds = edges[0] + step_s * np.arange(steps + 1)
    bits = np.interp(bounds, edges, cumulative)
    return np.diff(bits) / step_s


def _numeric_rows(path: Path, text: str, delimiter) -> List[Tuple[int, List[float]]]:
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(delimiter) if delimiter else line.split()
        try:
            values = [float(p) for p in parts]
        except ValueError:
            hint = "" if rows else " (a header line? start it with '#', which marks a comment, or remove it)"
            raise RecordingError("%s:%d: expected numbers, got %r%s" % (path, number, line[:80], hint)) from None
        if not all(math.isfinite(x) for x in values):
            raise RecordingError("%s:%d: values must be finite, got %r" % (path, number, line[:80]))
        rows.append((number, values))
    if len(rows) < 2:
        raise RecordingError("%s: a bandwidth recording needs at least 2 samples, found %d" % (path, len(rows)))
    return rows


# A text recording's samples with the line of each (for errors); a JSON one's without (None).
Samples = Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]


def _columns(path: Path, rows, count: int, layout: str) -> Tuple[np.ndarray, np.ndarray]:
    """The rows as a float array, and the line of each row."""
    for number, values in rows:
        if len(values) != count:
            raise RecordingError("%s:%d: expected %d columns (%s), got %d"
                             % (path, number, count, layout, len(values)))
    return np.array([values for _, values in rows], dtype=np.float64), np.array([number for number, _ in rows])


def _at(path: Path, lines: Optional[np.ndarray], sample: int) -> str:
    """Where sample ``sample`` (0-based) is: FILE:LINE for a text recording, as its other errors say."""
    return "%s:%d" % (path, lines[sample]) if lines is not None else "%s: sample %d" % (path, sample + 1)


def _checked(path: Path, times: np.ndarray, bps: np.ndarray,
             lines: Optional[np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
    if np.any(np.diff(times) < 0):
        raise RecordingError("%s: time goes backwards" % _at(path, lines, int(np.argmax(np.diff(times) < 0)) + 1))
    if np.any(bps < 0):
        raise RecordingError("%s: negative throughput (a recorded rate must be >= 0)"
                             % _at(path, lines, int(np.argmax(bps < 0))))
    keep = np.concatenate([[True], np.diff(times) > 0])  # drop duplicate timestamps
    return times[keep], bps[keep]


def _read_mbps(path: Path, text: str) -> Samples:
    data, lines = _columns(path, _numeric_rows(path, text, None), 2, "time_s throughput_Mbps")
    return data[:, 0], data[:, 1] * 1e6, lines


def _read_multipath(path: Path, text: str) -> Samples:
    data, lines = _columns(path, _numeric_rows(path, text, ","), 2, "time_s,bytes_per_second")
    return data[:, 0], data[:, 1] * 8.0, lines


def _read_ghent_raw(path: Path, text: str) -> Samples:
    data, lines = _columns(path, _numeric_rows(path, text, None), 6, "epoch_ms elapsed_ms lat lon bytes duration_ms")
    duration_s = data[:, 5] / 1000.0
    if np.any(duration_s <= 0):
        raise RecordingError("%s: duration_ms must be positive" % _at(path, lines, int(np.argmax(duration_s <= 0))))
    return data[:, 1] / 1000.0, data[:, 4] * 8.0 / duration_s, lines


def _read_ghent_json(path: Path, text: str) -> Samples:
    try:
        pattern = json.loads(text)["uplink"]["trace_pattern"]
        times = np.array([float(p["time"]) for p in pattern])
        # ReCoCo's "capacity" is bytes per millisecond (kB/s), not kbit/s as its field name suggests.
        bps = np.array([float(p["capacity"]) * 8000.0 for p in pattern])
    except (ValueError, KeyError, TypeError) as exc:
        raise RecordingError("%s: expected ReCoCo JSON {\"uplink\": {\"trace_pattern\": [{\"time\", \"capacity\"}]}}: %s"
                         % (path, exc)) from None
    if len(times) < 2:
        raise RecordingError("%s: a bandwidth recording needs at least 2 samples" % path)
    return times, bps, None


def _mahimahi_timestamps(path: Path, text: str) -> np.ndarray:
    """Every line's millisecond as int64, checked; errors name the line."""
    lines = text.splitlines()
    try:
        # Fast path (mahimahi files run to millions of lines): one token per non-blank line, all integers.
        tokens = text.split()
        if len(tokens) == sum(1 for line in lines if line.strip()):
            ms = np.array(tokens, dtype=np.int64)
            if np.all(ms >= 0) and np.all(np.diff(ms) >= 0):
                return ms
    except (ValueError, OverflowError):
        pass
    values = []  # the slow path only runs to find the bad line
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line:
            continue
        if not line.isdigit():
            detail = "negative timestamp" if line.lstrip("-").isdigit() else "got %r" % line[:80]
            raise RecordingError("%s:%d: expected one integer millisecond per line (mahimahi), %s"
                             % (path, number, detail))
        if values and int(line) < values[-1]:
            raise RecordingError("%s:%d: time goes backwards (%s ms after %d ms): mahimahi timestamps never decrease"
                             % (path, number, line, values[-1]))
        values.append(int(line))
    return np.array(values, dtype=np.int64)


def _read_mahimahi(path: Path, text: str) -> np.ndarray:
    """Bits per second per 1-second step from delivery opportunities.

    As mahimahi replays it, the file loops with a period equal to its last timestamp, so the
    timestamp ``t`` falls in the loop at ``((t - 1) mod period) + 1`` ms, and second ``k`` holds
    the milliseconds ``1000 k + 1 .. 1000 (k + 1)``: a file of timestamps 1..3000 is exactly three
    seconds. A period under a second repeats inside one step. A partial last second is dropped, as
    for the other formats.
    """
    ms = _mahimahi_timestamps(path, text)
    if len(ms) == 0:
        raise RecordingError("%s: no delivery opportunities: a mahimahi file has one integer millisecond per line"
                         % path)
    period = int(ms[-1])
    if period <= 0:
        raise RecordingError("%s: the recording lasts 0 ms (its last timestamp is its period): mahimahi needs it > 0" % path)
    position = (ms - 1) % period + 1
    if period < 1000:
        return np.array([len(ms) * PACKET_BITS * 1000.0 / period])
    steps = period // 1000
    counts = np.bincount((position - 1) // 1000, minlength=steps)[:steps]
    return counts.astype(np.float64) * PACKET_BITS / STEP_S


def _detect(path: Path, text: str) -> str:
    stripped = text.lstrip()
    if stripped.startswith("{"):
        return "ghent"
    if path.suffix in MAHIMAHI_SUFFIXES:
        return "mahimahi"
    first = next((line for line in text.splitlines() if line.strip() and not line.startswith("#")), "")
    if first.strip().isdigit():
        return "mahimahi"  # a bare integer millisecond: no other format has a single column
    if "," in first:
        return "multipath"
    if len(first.split()) == 6:
        return "ghent"
    if len(first.split()) == 2:
        return COOKED  # fcc, norway and cooked ghent share this layout and unit: time_s Mbit/s
    raise RecordingError("%s: cannot tell the recording format from its first line %r: name it (one of %s) with "
                         "'link --format' or 'run/evaluate --link-format', or convert the file to two "
                         "whitespace-separated columns, seconds and Mbit/s (docs/link.md)"
                         % (path, first[:80], ", ".join(FORMATS[1:])))


def read_recording(path: Union[str, Path], fmt: str = "auto") -> BandwidthRecording:
    """Read a bandwidth recording file into bits per second per 1-second step."""
    path = Path(path)
    if fmt not in FORMATS:
        raise RecordingError("unknown recording format %r: use one of %s" % (fmt, ", ".join(FORMATS)))
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise RecordingError("%s: not a text file (byte %#04x at offset %d is not UTF-8): a bandwidth recording is text "
                             "in one of the formats %s (docs/link.md)"
                             % (path, exc.object[exc.start], exc.start, ", ".join(FORMATS[1:]))) from None
    except OSError as exc:
        raise RecordingError("cannot read bandwidth recording %s: %s" % (path, exc)) from None
    detected = _detect(path, text) if fmt == "auto" else fmt
    if detected == "mahimahi":
        return BandwidthRecording(_read_mahimahi(path, text), str(path), detected)
    if detected == "multipath":
        times, bps, lines = _read_multipath(path, text)
        if fmt == "auto" and len(bps) and float(np.max(bps)) < MULTIPATH_IMPLAUSIBLE_BPS:
            raise RecordingError(
                "%s: read as the multipath CSV layout (time_s,bytes_per_second: it has commas), every rate is under "
                "%g bytes/s, which no link is: if the values are Mbit/s, write two whitespace-separated columns "
                "(seconds Mbit/s); if they are bytes/s, name the format (link --format multipath, run/evaluate --link-format multipath)"
                % (path, MULTIPATH_IMPLAUSIBLE_BPS / 8.0))
    elif detected == "ghent" and text.lstrip().startswith("{"):
        times, bps, lines = _read_ghent_json(path, text)
    elif detected == "ghent" and len(text.split("\n", 1)[0].split()) == 6:
        times, bps, lines = _read_ghent_raw(path, text)
    else:
        times, bps, lines = _read_mbps(path, text)
    times, bps = _checked(path, times, bps, lines)
    return BandwidthRecording(resample(times, bps), str(path), detected)


def constant_recording(bps: float, seconds: int = 1) -> BandwidthRecording:
    """A flat link, for benchmarks and tests."""
    return BandwidthRecording(np.full(max(1, seconds), float(bps)), "constant %.0f bit/s" % bps, "constant")
