"""Fetch mahimahi's published cellular recordings (Debian's mahimahi-traces package) for evaluation.

The 16 recordings (8 drives, an uplink ``.up`` and a downlink ``.down`` each: AT&T, T-Mobile and Verizon
LTE, UMTS and EVDO, Boston 2012-2016) were measured with the Saturator of Winstein, Sivaraman and
Balakrishnan, "Stochastic Forecasts Achieve High Throughput and Low Delay over Cellular Networks", NSDI 2013.
Debian packages them as ``mahimahi-traces`` 0.98-1.1 (bullseye, architecture all); this script downloads
that package from Debian's archive, checks its SHA-256, and unpacks only the recordings into ``--dest``
(no dpkg needed: a .deb is an ``ar`` archive holding ``data.tar.xz``). The files are GPL-3+: edgesplit
reads them, it does not ship them. Prints one JSON document: the package, where it came from, its hash, the
folder, and per recording its file name, whole seconds and mean rate as edgesplit's reader sees them (a
partial last second dropped, as for every recording format).

    python bench/fetch_mahimahi_recordings.py [--dest ~/.cache/edgesplit/mahimahi-traces-0.98-1.1] [--deb FILE]
"""
import argparse
import hashlib
import io
import json
import lzma
import os
import sys
import tarfile
import urllib.request
from pathlib import Path
from typing import Dict, Iterator, Tuple

PACKAGE = "mahimahi-traces_0.98-1.1_all.deb"
URL = "http://deb.debian.org/debian/pool/main/m/mahimahi/" + PACKAGE
SHA256 = "31f096d488d66e141641a3a9517932b9106936824824c0d27a12fbd2a045e1ac"
MEMBER_DIR = "usr/share/mahimahi/traces/"
RECORDINGS = 16  # 8 drives, an uplink and a downlink each


def default_dest() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "edgesplit" / "mahimahi-traces-0.98-1.1"


def ar_members(data: bytes) -> Iterator[Tuple[str, bytes]]:
    """The members of an ``ar`` archive (the .deb container): name and content."""
    if not data.startswith(b"!<arch>\n"):
        raise ValueError("not an ar archive (a .deb starts with '!<arch>')")
    at = 8
    while at + 60 <= len(data):
        header = data[at:at + 60]
        name = header[:16].decode("ascii").strip().rstrip("/")
        size = int(header[48:58].decode("ascii").strip())
        yield name, data[at + 60:at + 60 + size]
        at += 60 + size + (size % 2)  # members are padded to an even offset


def recordings(deb: bytes) -> Dict[str, bytes]:
    """The recordings' files of the package (name -> content), from its ``data.tar.xz``."""
    for name, content in ar_members(deb):
        if name.startswith("data.tar"):
            raw = lzma.decompress(content) if name.endswith(".xz") else content
            with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
                found = {}
                for member in tar.getmembers():
                    path = member.name.lstrip("./")
                    base = path[len(MEMBER_DIR):]
                    if member.isfile() and path.startswith(MEMBER_DIR) and base.endswith((".up", ".down")) \
                            and "/" not in base:
                        found[base] = tar.extractfile(member).read()
                return found
    raise ValueError("no data.tar member in the package")


def summary(path: Path) -> Dict[str, float]:
    """Seconds and mean rate of a written recording, read by edgesplit's own reader."""
    from edgesplit.runtime.emulation.link.recording_readers import read_recording

    recording = read_recording(path, "mahimahi")
    return {"seconds": len(recording.bps), "mean_mbps": round(float(recording.bps.mean()) / 1e6, 3)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=default_dest(),
                        help="folder the recordings are written to (default: %(default)s)")
    parser.add_argument("--deb", type=Path, help="a copy of %s already downloaded (its hash is checked)" % PACKAGE)
    args = parser.parse_args(argv)
    if args.dest.exists() and not args.dest.is_dir():
        print("fetch_mahimahi_recordings: --dest %s is a file: give a folder (it is created if missing)" % args.dest,
              file=sys.stderr)
        return 1
    if args.deb:
        try:
            deb = args.deb.read_bytes()
        except OSError as exc:
            print("fetch_mahimahi_recordings: --deb %s: %s" % (args.deb, exc.strerror or exc), file=sys.stderr)
            return 1
    else:
        print("fetch_mahimahi_recordings: downloading %s" % URL, file=sys.stderr, flush=True)
        try:
            with urllib.request.urlopen(URL, timeout=120) as answer:
                deb = answer.read()
        except OSError as exc:
            print("fetch_mahimahi_recordings: could not download %s: %s (download it another way and give it with "
                  "--deb FILE)" % (URL, exc), file=sys.stderr)
            return 1
    digest = hashlib.sha256(deb).hexdigest()
    if digest != SHA256:
        print("fetch_mahimahi_recordings: %s has SHA-256 %s, expected %s: not the package this evaluation names; "
              "nothing written" % (args.deb or URL, digest, SHA256), file=sys.stderr)
        return 1
    files = recordings(deb)
    if len(files) != RECORDINGS:
        print("fetch_mahimahi_recordings: the package holds %d recordings under /%s, expected %d: nothing written"
              % (len(files), MEMBER_DIR, RECORDINGS), file=sys.stderr)
        return 1
    args.dest.mkdir(parents=True, exist_ok=True)
    report = {"package": PACKAGE, "source": str(args.deb) if args.deb else URL, "sha256": digest,
              "dest": str(args.dest), "recordings": []}
    for name in sorted(files):
        (args.dest / name).write_bytes(files[name])
        report["recordings"].append(dict({"file": name}, **summary(args.dest / name)))
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
