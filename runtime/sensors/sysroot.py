"""The one setting every reader takes its filesystem root from.

On a board the root is ``/``. Tests and ``EDGESPLIT_SYSROOT`` point it at a fake tree that copies a
real board's sysfs/procfs layout, so the same readers run against every board anywhere. Paths are
written as they are on the board (``/sys/class/devfreq``) and resolved under the root here.
"""
import os
from typing import List, Mapping, Optional

from edgesplit.runtime.sensors.reading import SensorUnavailable

ENV_VAR = "EDGESPLIT_SYSROOT"


class SysRoot:
    def __init__(self, path: str = "/") -> None:
        self.path = os.path.abspath(path)

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None) -> "SysRoot":
        """The composition root's choice: ``$EDGESPLIT_SYSROOT`` if set, else ``/``."""
        environ = os.environ if environ is None else environ
        return cls(environ.get(ENV_VAR) or "/")

    def __repr__(self) -> str:
        return "SysRoot(%r)" % self.path

    def resolve(self, board_path: str) -> str:
        return os.path.join(self.path, board_path.lstrip("/"))

    def board_path(self, real_path: str) -> str:
        """Turns a path under the root (also one reached through symlinks) back into the board's path."""
        root = os.path.realpath(self.path)
        real = os.path.realpath(real_path)
        if real == root:
            return "/"
        if real.startswith(root.rstrip(os.sep) + os.sep):
            return "/" + os.path.relpath(real, root)
        return real_path

    def exists(self, board_path: str) -> bool:
        return os.path.exists(self.resolve(board_path))

    def isdir(self, board_path: str) -> bool:
        return os.path.isdir(self.resolve(board_path))

    def listdir(self, board_path: str) -> List[str]:
        """Sorted entries, or [] when the directory is missing or unreadable."""
        try:
            return sorted(os.listdir(self.resolve(board_path)))
        except OSError:
            return []

    def realpath(self, board_path: str) -> str:
        """The board path a symlinked sysfs entry points to (``/sys/class/hwmon/hwmon3`` -> device path)."""
        return self.board_path(os.path.realpath(self.resolve(board_path)))

    def read_text(self, board_path: str) -> str:
        """The file's text with trailing NULs (device-tree strings) and whitespace removed."""
        try:
            with open(self.resolve(board_path), "rb") as handle:
                raw = handle.read(65536)
        except FileNotFoundError:
            raise SensorUnavailable("%s does not exist" % board_path)
        except OSError as exc:
            raise SensorUnavailable("cannot read %s: %s" % (board_path, exc.strerror or exc))
        return raw.decode("utf-8", "replace").rstrip("\x00\n\r\t ").strip("\x00")

    def read_int(self, board_path: str) -> int:
        """An integer sysfs attribute. Some drivers append a unit (``32760 ma``): the first word counts."""
        text = self.read_text(board_path)
        word = text.split()[0] if text.split() else ""
        try:
            return int(word)
        except ValueError:
            raise SensorUnavailable("%s holds %r, not an integer" % (board_path, text[:40]))
