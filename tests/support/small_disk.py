"""A real full disk for tests: a process inside its own mount namespace with a small tmpfs.

``unshare -m`` gives the command a private copy of the mount table, so the tmpfs is mounted for it
alone (nothing on the host changes and nothing is left mounted when it exits). Writes there get a
real ENOSPC from the kernel. ``free(pid, name)`` deletes a file inside that namespace (``nsenter``),
which is how a test gives the space back. Needs root (``available()`` says whether it can run).
"""
import os
import shutil
import stat
import subprocess
from pathlib import Path

# The wrapper forwards SIGTERM/SIGINT to the command and, when it has exited, copies the database
# files out of the tmpfs (which vanishes with the namespace) so the test can check them.
_WRAPPER = r'''#!/bin/sh
exec unshare -m --propagation private sh -c '
mount -t tmpfs -o size=%(size)s tmpfs "%(disk)s" || exit 97
dd if=/dev/zero of="%(disk)s/ballast" bs=64k count=%(ballast_blocks)d 2>/dev/null
"%(python)s" "$@" &
child=$!
trap "kill -TERM $child" TERM INT
wait $child
rc=$?
while kill -0 $child 2>/dev/null; do wait $child; rc=$?; done
cp "%(disk)s"/*.db* "%(out)s"/ 2>/dev/null
exit $rc' sh "$@"
'''


def available() -> bool:
    return os.geteuid() == 0 and bool(shutil.which("unshare")) and bool(shutil.which("nsenter")) and subprocess.call(
        ["unshare", "-m", "true"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) == 0


def wrapper(folder: Path, python: str, disk: Path, out: Path, size: str = "8m", ballast_kib: int = 6144) -> str:
    """A script used like ``python``: runs ``python ARGS`` with ``disk`` a tmpfs of ``size`` holding a
    ``ballast`` file of ``ballast_kib`` KiB (delete it with ``free`` to give the space back)."""
    disk.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    script = folder / "small_disk.sh"
    script.write_text(_WRAPPER % {"size": size, "disk": disk, "out": out, "python": python,
                                  "ballast_blocks": ballast_kib // 64})
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


def free(pid: int, path: Path) -> None:
    """Delete ``path`` inside the mount namespace of process ``pid``."""
    subprocess.run(["nsenter", "-t", str(pid), "-m", "rm", "-f", str(path)], check=True)
