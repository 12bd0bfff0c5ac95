"""Reading and writing ``BUNDLE/profiles/<board>.json`` (atomic: a temporary file renamed into place)."""
import json
from pathlib import Path
from typing import Any, Dict, List, Union

from edgesplit.policies_lite.files import atomic_write
from edgesplit.runtime.profiling.schema import BOARD_NAME, ProfileError, check_matches_bundle, validate_profile

PROFILES_DIR = "profiles"


def profile_path(bundle_root: Union[str, Path], board: str) -> Path:
    if not BOARD_NAME.match(board or ""):
        raise ProfileError("board name %r cannot name a profile file: use letters, digits, '_', '.', '-'" % board)
    return Path(bundle_root) / PROFILES_DIR / (board + ".json")


def save_profile(bundle, profile: Dict[str, Any]) -> Path:
    """Validate ``profile`` against ``bundle`` and write it atomically; returns the file written."""
    validate_profile(profile, "profile for %s" % profile.get("board"))
    check_matches_bundle(profile, bundle, "profile for %s" % profile["board"])
    path = profile_path(bundle.root, profile["board"])
    try:
        path.parent.mkdir(exist_ok=True)
        with atomic_write(path, binary=False) as handle:
            json.dump(profile, handle, indent=2)
            handle.write("\n")
    except OSError as exc:
        raise ProfileError("cannot write a profile into %s: %s (is the bundle read-only? copy it somewhere "
                           "writable)" % (path.parent, exc.strerror or exc)) from None
    return path


def load_profile(bundle, board: str) -> Dict[str, Any]:
    """The validated profile of ``bundle`` on ``board``; ProfileError when absent, malformed or stale."""
    path = profile_path(bundle.root, board)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProfileError("%s: no profile for board %s; measure one with 'edgesplit profile %s --board %s'"
                           % (path, board, bundle.root, board)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError("%s: cannot read: %s" % (path, exc)) from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ProfileError("%s: not valid JSON (%s): measure it again with 'edgesplit profile'" % (path, exc)) from None
    validate_profile(data, str(path))
    if data["board"] != board:
        raise ProfileError("%s: says board %r but is stored as %s.json" % (path, data["board"], board))
    check_matches_bundle(data, bundle, str(path))
    return data


def list_profiles(bundle_root: Union[str, Path]) -> List[str]:
    """Boards with a profile file in the bundle (not validated)."""
    folder = Path(bundle_root) / PROFILES_DIR
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.json"))
