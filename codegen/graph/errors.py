"""Errors the splitter raises on models and cut requests it cannot handle (the CLI prints them)."""
from edgesplit.runtime.errors import EdgesplitError


class ModelError(EdgesplitError):
    """The ONNX model cannot be read, or has a structure the splitter does not support."""


class CutError(EdgesplitError):
    """A requested cut does not exist or is not valid for this model."""
