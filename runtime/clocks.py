"""Waiting on a clock that may not be real time (the emulator's clock runs faster)."""
import time
from typing import Callable, Optional

Clock = Callable[[], float]


def sleep_until(clock: Clock, deadline: float, idle: Optional[Callable[[], object]] = None,
                poll_real_s: float = 0.002, real_s_per_tick: float = 1.0) -> None:
    """Sleep until ``clock()`` reads ``deadline``; with ``idle``, call it every ``poll_real_s`` meanwhile.

    ``real_s_per_tick`` converts the clock's units to real seconds (1 / speedup for an emulated
    clock). time.sleep overshoots by ~0.1 ms, which is fine against waits of milliseconds.
    """
    while True:
        remaining = (deadline - clock()) * real_s_per_tick
        if remaining <= 0:
            return
        if idle is None:
            time.sleep(remaining)
            return
        idle()
        time.sleep(min(remaining, poll_real_s))
