"""Atomic file output: a temporary sibling, fsynced, renamed over the target, then the directory fsynced.

A reader never sees a half-written file, and a failure (or a power cut) leaves the previous file,
if any, untouched and no temporary file behind. The directory fsync makes the rename itself durable:
without it a power cut right after ``save_policy`` returns can bring back the old file, or none.

It lives here, in the lowest layer (numpy and stdlib only), because ``policies_lite`` cannot import
``runtime`` while ``runtime`` and ``codegen`` import ``policies_lite``: every atomic write in the
product goes through this one function.
"""
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator, Optional, Union


@contextmanager
def atomic_write(path: Union[str, Path], binary: bool = True, mode_bits: Optional[int] = 0o644) -> Iterator[IO]:
    """``with atomic_write(path) as handle: handle.write(...)``; text mode is UTF-8 with newline=''.

    ``mode_bits`` are set on the new file whatever the umask (None keeps mkstemp's 0600). Raises
    FileNotFoundError when the target's directory does not exist (callers name the file in their
    own error).
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix="." + path.name + ".", suffix=".partial", dir=str(directory))
    try:
        options = {} if binary else {"encoding": "utf-8", "newline": ""}
        with os.fdopen(fd, "wb" if binary else "w", **options) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if mode_bits is not None:
            os.chmod(tmp, mode_bits)
        os.replace(tmp, str(path))
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(str(directory), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
