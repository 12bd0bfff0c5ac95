"""The daemon's threads under their own names in ``top -H``, ``ps -L`` and ``/proc/PID/task/*/comm``.

Python names its threads for itself only: every native thread keeps the process's name, so a busy
thread cannot be told from an idle one from outside. Linux lets a process rename its own threads
through ``/proc/self/task/TID/comm`` (15 bytes; ``edgesplit-`` is shortened to ``es-`` to fit);
elsewhere this does nothing.
"""
import logging
import threading
from typing import Optional

log = logging.getLogger(__name__)


def name_native_thread(thread: Optional[threading.Thread] = None) -> bool:
    """Give ``thread`` (default: the calling one) its Python name natively; False where that fails."""
    thread = thread or threading.current_thread()
    native_id = getattr(thread, "native_id", None)
    if native_id is None:
        return False
    try:
        with open("/proc/self/task/%d/comm" % native_id, "w") as comm:
            comm.write(thread.name.replace("edgesplit-", "es-")[:15])
    except OSError:  # not Linux, or the thread ended meanwhile
        return False
    return True


def name_native_threads() -> int:
    """Name every running thread natively (call once they have started); returns how many were named.
    The main thread keeps its name: it is the process's name in ``ps`` and ``pgrep``."""
    main = threading.main_thread()
    return sum(name_native_thread(thread) for thread in threading.enumerate() if thread is not main)
