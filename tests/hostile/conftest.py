"""Fixtures for the hostile-input and fault tests (make_peer and make_daemon come from tests/conftest.py)."""
import pytest

from support.tiny_bundle import write_tiny_bundle


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory):
    return write_tiny_bundle(tmp_path_factory.mktemp("bundles") / "tiny")
