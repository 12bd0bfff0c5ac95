import shutil

import pytest

from edgesplit.runtime.default_bundle import default_bundle_path


@pytest.fixture
def bundle_dir(tmp_path):
    """A private copy of the embedded bundle: profiling writes into the bundle directory."""
    target = tmp_path / "bundle"
    shutil.copytree(str(default_bundle_path()), str(target))
    return target
