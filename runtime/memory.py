"""Giving memory back to the system after a large request.

onnxruntime's CPU arena keeps the peak of every run for the session's lifetime (two 64 MiB
requests left a peer at 6.5 GB), so sessions run without it (``segments/onnx_runner.py``) and
free their buffers after each run. What glibc's malloc then keeps in its own free lists is handed
back with ``malloc_trim``, called after a request larger than ``TRIM_AFTER_BYTES``. Elsewhere (musl,
macOS) the trim is a no-op.
"""
import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

TRIM_AFTER_BYTES = 4 * 1024 * 1024

_trim = None
_looked_up = False


def release_free_memory() -> bool:
    """Return free heap memory to the system; False where the C library has no ``malloc_trim``."""
    global _trim, _looked_up
    if not _looked_up:
        _looked_up = True
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _trim = libc.malloc_trim
            _trim.argtypes = [ctypes.c_size_t]
            _trim.restype = ctypes.c_int
        except (OSError, AttributeError):
            log.debug("no malloc_trim in this C library: freed memory stays with the allocator")
    if _trim is None:
        return False
    _trim(0)
    return True
