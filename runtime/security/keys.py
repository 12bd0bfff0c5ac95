"""CurveZMQ key files in the ZeroMQ certificate format (what ``zmq.auth.load_certificate`` reads).

``NAME.key`` holds the public key (safe to copy to the other side); ``NAME.key_secret`` holds both
keys and is created owner-only (0600) in one step, never world-readable even for a moment.
"""
import datetime
import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple, Union

import zmq

from edgesplit.runtime.errors import EdgesplitError

PathLike = Union[str, Path]
PUBLIC_SUFFIX = ".key"
SECRET_SUFFIX = ".key_secret"

_TEMPLATE = """#   ****  Generated on {date} by edgesplit  ****
#   ZeroMQ CURVE {kind} certificate for {name}
#   {advice}
metadata
    name = "{name}"
curve
    public-key = "{public}"
{secret_line}"""


class KeyFileError(EdgesplitError):
    """A key file is missing, unreadable, malformed or has unsafe permissions."""


@dataclass(frozen=True)
class KeyPair:
    """Z85-encoded (40 characters) public and, when known, secret key."""

    public: bytes
    secret: Optional[bytes] = None


def curve_available() -> bool:
    return bool(zmq.has("curve"))


def _require_curve() -> None:
    if not curve_available():
        raise KeyFileError("this libzmq was built without CURVE support: install pyzmq from PyPI (its wheels "
                           "bundle libzmq with CURVE) or disable the secure link with insecure = true")


def _write_exclusive(path: Path, text: str, mode: int) -> None:
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)  # the umask must not widen or narrow what we asked for
        os.write(fd, text.encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)


def generate_keypair(directory: PathLike, name: str, overwrite: bool = False) -> Tuple[Path, Path]:
    """Write ``NAME.key`` (0644) and ``NAME.key_secret`` (0600) in ``directory``; return both paths."""
    _require_curve()
    if not name or "/" in name or name.startswith("."):
        raise KeyFileError("key name %r: use a plain file name such as 'device-01' or 'peer'" % name)
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise KeyFileError("cannot create key directory %s: %s" % (directory, exc.strerror or exc)) from None
    public_path, secret_path = directory / (name + PUBLIC_SUFFIX), directory / (name + SECRET_SUFFIX)
    existing = [str(p) for p in (public_path, secret_path) if p.exists()]
    if existing and not overwrite:
        raise KeyFileError("%s already exist(s): keep them, or pass --force to replace the pair (every peer or "
                           "device that trusts the old public key must then get the new one)" % ", ".join(existing))
    for path in (public_path, secret_path):
        if path.exists():
            path.unlink()
    public, secret = zmq.curve_keypair()
    date = datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    fields = dict(date=date, name=name, public=public.decode("ascii"))
    try:
        _write_exclusive(public_path, _TEMPLATE.format(kind="public", advice="copy this file to the other side",
                                                       secret_line="", **fields), 0o644)
        _write_exclusive(secret_path, _TEMPLATE.format(
            kind="secret", advice="keep this file private (mode 0600); never copy it off this machine",
            secret_line='    secret-key = "%s"\n' % secret.decode("ascii"), **fields), 0o600)
    except OSError as exc:
        raise KeyFileError("cannot write key files in %s: %s" % (directory, exc.strerror or exc)) from None
    return public_path, secret_path


def load_keys(path: PathLike, need_secret: bool = False) -> KeyPair:
    """Read a ``.key`` or ``.key_secret`` file; with ``need_secret`` also check it is owner-only."""
    _require_curve()
    import zmq.auth

    path = Path(path)
    if not path.is_file():
        raise KeyFileError("%s: no such key file (create one with 'edgesplit keys generate NAME --dir DIR')" % path)
    try:
        public, secret = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as exc:
        raise KeyFileError("%s: not a ZeroMQ certificate file (%s)" % (path, exc)) from None
    if not public or len(public) != 40:
        raise KeyFileError("%s: no 40-character Z85 public-key in the 'curve' section" % path)
    if need_secret:
        if not secret or len(secret) != 40:
            raise KeyFileError("%s: holds no secret-key: give the NAME%s file, not NAME%s"
                               % (path, SECRET_SUFFIX, PUBLIC_SUFFIX))
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise KeyFileError("%s: secret key file is readable by others (mode %o): run chmod 600 %s"
                               % (path, mode, path))
    return KeyPair(public, secret or None)


def load_public_keys(directory: PathLike) -> List[Tuple[bytes, str]]:
    """(public key, file name) for every ``*.key`` in ``directory``: the devices a peer accepts."""
    directory = Path(directory)
    if not directory.is_dir():
        raise KeyFileError("%s: no such directory of allowed device keys (copy each device's NAME.key there)"
                           % directory)
    keys = []
    for path in sorted(directory.glob("*" + PUBLIC_SUFFIX)):
        keys.append((load_keys(path).public, path.name))
    return keys
