"""Helpers shared by the TFLite tests: the shipped twin's location and the interpreter check."""
from pathlib import Path

import pytest

TWIN_DIR = Path(__file__).resolve().parent / "data" / "mnist_branchy_tflite"
REFRESH = ("edgesplit export-tflite --out tests/support/data/mnist_branchy_tflite --force "
           "(workstation, needs litert-torch)")


def tflite_installed() -> bool:
    for module in ("ai_edge_litert.interpreter", "tflite_runtime.interpreter"):
        try:
            __import__(module)
            return True
        except ImportError:
            continue
    return False


needs_tflite = pytest.mark.skipif(not tflite_installed(), reason="no TFLite interpreter: pip install ai-edge-litert "
                                                                 "(or tflite-runtime 'numpy<2' on Python 3.8)")
