"""Polling for a condition in tests that watch a real process or thread."""
import time


def wait_until(condition, timeout_s: float = 10.0, poll_s: float = 0.01):
    """``condition()``'s first truthy value within ``timeout_s``, else its last value (falsy)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll_s)
    return condition()
