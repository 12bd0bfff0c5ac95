"""Where this package is installed, so commands never write into it.

Files under site-packages belong to pip (its RECORD lists their hashes, an upgrade replaces them);
the embedded default bundle also ships inside the package folders. A command that would write there
is told to write somewhere else instead.
"""
import site
import sysconfig
from pathlib import Path
from typing import List, Optional


def package_folders() -> List[Path]:
    """The folders the ``edgesplit`` packages are loaded from (site-packages, or a checkout's folders)."""
    import edgesplit.board_configs
    import edgesplit.policies_lite
    import edgesplit.runtime

    folders = [Path(module.__file__).resolve().parent
               for module in (edgesplit.runtime, edgesplit.policies_lite, edgesplit.board_configs)]
    try:
        import edgesplit.codegen

        folders.append(Path(edgesplit.codegen.__file__).resolve().parent)
    except ImportError:  # a board install may lack the workstation part
        pass
    return folders


def site_folders() -> List[Path]:
    """Every folder Python installs distributions into (system, venv and user site-packages)."""
    found = {sysconfig.get_paths()[key] for key in ("purelib", "platlib")}
    found.update(getattr(site, "getsitepackages", lambda: [])())
    user = getattr(site, "getusersitepackages", lambda: None)()
    if user:
        found.add(user)
    return [Path(folder).resolve() for folder in sorted(found)]


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def installed_location(path, include_package_folders: bool = True) -> Optional[Path]:
    """The site-packages folder (or, with ``include_package_folders``, the package folder) holding ``path``."""
    target = Path(path).resolve()
    candidates = site_folders() + (package_folders() if include_package_folders else [])
    for folder in candidates:
        if _within(target, folder):
            return folder
    return None
