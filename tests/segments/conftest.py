"""Fixtures: the embedded onnxruntime bundle and its shipped TFLite twin (tests/support/data).

The twin was written by ``edgesplit export-tflite`` (litert-torch) from the embedded bundle; it is
checked in so the on-device leg (Python 3.8, tflite-runtime, no torch) can run it. When the embedded
bundle is rebuilt the twin is stale: these tests then fail with the command that refreshes it.
"""

import pytest

from edgesplit.runtime.bundle.store import load_bundle
from edgesplit.runtime.default_bundle import default_bundle_path, load_heldout
from support.tflite_twin import REFRESH, TWIN_DIR  # noqa: E402


@pytest.fixture(scope="session")
def onnx_bundle():
    return load_bundle(default_bundle_path())


@pytest.fixture(scope="session")
def tflite_bundle(onnx_bundle):
    twin = load_bundle(TWIN_DIR)
    assert twin.wire_hash == onnx_bundle.hash, "the shipped TFLite twin is stale; refresh it: " + REFRESH
    return twin


@pytest.fixture(scope="session")
def images():
    return load_heldout()[0][:32]
