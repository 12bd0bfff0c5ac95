"""The ``--out`` of the commands that write a frozen policy (``train``, ``build-policy``), checked before any work.

Training takes minutes: a path it cannot write, or a policy it would replace without being told to, is refused
while the user is still looking. The file itself is written atomically (``policies_lite.save_policy``: a temporary
sibling renamed over the target), so a reader never sees half a policy.
"""
import os
import tempfile
from pathlib import Path

from edgesplit.runtime.errors import InputError


def check_policy_out(out: str, replace: bool, replace_flag: str) -> Path:
    """``out`` as a Path: a .npz in an existing folder, new unless ``replace`` (the user's ``replace_flag``)."""
    path = Path(out)
    if path.suffix != ".npz":
        raise InputError("--out %s: a policy is written as .npz" % path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise InputError("--out %s: directory %s does not exist" % (path, path.parent))
    if path.is_dir():
        raise InputError("--out %s: is a directory; give the policy file to write" % path)
    if (path.exists() or path.is_symlink()) and not replace:
        raise InputError("--out %s already exists: pass %s to replace it, or choose another path"
                         % (path, replace_flag))
    try:  # what the final write does first (a temporary sibling), now rather than after the training
        handle, probe = tempfile.mkstemp(dir=str(folder), prefix=".%s." % path.name, suffix=".probe")
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        raise InputError("--out %s: cannot write in %s (%s): choose a folder you can write to"
                         % (path, folder, exc.strerror or exc)) from None
    return path


def write_failed(out, exc: OSError, what: str = "the policy") -> InputError:
    """The error for a final write that failed after the work (the disk filled up, the folder went away)."""
    return InputError("%s: writing %s failed (%s); nothing was replaced: free space or choose another --out, and "
                      "run again" % (out, what, exc.strerror or exc))
