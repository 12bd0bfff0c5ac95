"""The policy shipped for ``edgesplit demo`` and the name users type for it (no numpy here: the daemon's config
parser resolves the name)."""
import os
from pathlib import Path

DEMO_POLICY = "demo"  # what users type for the shipped policy
DEMO_POLICY_FILE = Path(__file__).resolve().parent / "assets" / "policies" / "demo_policy.npz"


def resolve_policy_path(name: str, folder: str = "") -> Path:
    """The policy file ``name`` (relative to ``folder``, default the current one), or the shipped demo policy for
    ``demo`` unless ``folder`` has a file of that name."""
    path = os.path.normpath(os.path.join(folder, name)) if folder and not os.path.isabs(name) else name
    if name == DEMO_POLICY and not os.path.isfile(path):
        return DEMO_POLICY_FILE
    return Path(path)
