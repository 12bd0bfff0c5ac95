"""``edgesplit peer`` as a child process (for the demo, tests and benchmarks).

The child prints one JSON line when it is ready (``--json``); ``endpoint`` is the address it bound,
so ``tcp://127.0.0.1:*`` picks a free port. Its stderr (the log) goes to a temporary file, not a
pipe: a chatty peer can never block on a full pipe nobody reads, and the text is there when it
fails to start or after ``stop()``.
"""
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from edgesplit.runtime.errors import EdgesplitError

Launcher = Callable[[List[str]], List[str]]


class PeerStartError(EdgesplitError):
    """The peer process exited, or said nothing usable, before it was ready."""


def peer_command(bundle_dir: Union[str, Path], bind: str = "tcp://127.0.0.1:*",
                 extra: Sequence[str] = ()) -> List[str]:
    """The argv of ``edgesplit peer`` run by this interpreter, printing its ready line as JSON."""
    return ([sys.executable, "-m", "edgesplit.runtime.cli", "peer", str(bundle_dir), "--bind", bind, "--json"]
            + list(extra))


class PeerProcess:
    """Start ``edgesplit peer BUNDLE`` and wait for its ready line; ``stop()`` (or ``with``) ends it.

    ``launcher`` wraps the argv (e.g. ``ip netns exec NS ...``); ``env`` replaces this process's
    environment. Raises ``PeerStartError`` with the peer's own stderr when it does not come up.
    """

    def __init__(self, bundle_dir: Union[str, Path], bind: str = "tcp://127.0.0.1:*", extra: Sequence[str] = (),
                 launcher: Optional[Launcher] = None, env: Optional[Mapping[str, str]] = None,
                 start_timeout_s: float = 60.0):
        self.args = peer_command(bundle_dir, bind, extra)
        if launcher is not None:
            self.args = launcher(self.args)
        self._stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._stderr,
                                     env=dict(os.environ if env is None else env, PYTHONUNBUFFERED="1"))
        self.ready = self._ready_line(start_timeout_s)  # type: Dict
        self.endpoint = str(self.ready["endpoint"])

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _ready_line(self, timeout_s: float) -> Dict:
        if not select.select([self.proc.stdout], [], [], timeout_s)[0]:
            self._fail("did not say it was ready within %.0f s" % timeout_s)
        line = self.proc.stdout.readline()  # the peer writes and flushes whole lines
        try:
            ready = json.loads(line.decode("utf-8", "replace"))
            if ready.get("event") == "ready" and ready.get("endpoint"):
                return ready
        except (ValueError, AttributeError):
            pass
        self._fail("printed %r instead of its ready line" % line[:200])
        raise AssertionError("unreachable")  # _fail raises

    def _fail(self, what: str) -> None:
        code, _, err = self.stop(signal.SIGKILL)
        raise PeerStartError("the peer (%s) %s; exit status %s; its log ends:\n%s"
                             % (" ".join(self.args), what, code, err[-2000:].strip() or "(nothing)"))

    def stderr_text(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace")

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 10.0) -> Tuple[int, str, str]:
        """Signal the peer, wait (SIGKILL after ``timeout_s``); returns (exit status, rest of stdout, stderr)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            out = self.proc.communicate(timeout=timeout_s)[0]
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out = self.proc.communicate()[0]
        return self.proc.returncode, (out or b"").decode("utf-8", "replace"), self.stderr_text()

    def __enter__(self) -> "PeerProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
