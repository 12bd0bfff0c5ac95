"""The daemon's threads under their own names in ``top -H``, ``ps -L`` and ``/proc/PID/task/*/comm``.

Python names its threads for itself only; every native thread keeps the process's name, so a busy
thread cannot be told from an idle one from outside. ``name_native_thread`` gives the calling
thread its name (Linux ``prctl(PR_SET_NAME)``, 15 bytes); elsewhere it does nothing.
"""
import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

_PR_SET_NAME = 15
_prctl = None
_looked_up = False


def name_native_thread(name: str) -> bool:
    """Name the calling thread (cut to 15 bytes); False where the C library has no ``prctl``."""
    global _prctl, _looked_up
    if not _looked_up:
        _looked_up = True
        try:
            _prctl = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl
        except (OSError, AttributeError):
            log.debug("no prctl in this C library: threads keep the process's name")
    if _prctl is None:
        return False
    return _prctl(_PR_SET_NAME, ctypes.c_char_p(name.encode("utf-8")[:15]), 0, 0, 0) == 0
