"""A tiny real bundle for transport tests, written without the onnx package.

The on-device test leg has no ``onnx`` (a workstation tool), so the three ONNX files are encoded
here directly as protobuf (the few ModelProto fields a MatMul/Relu graph needs). onnxruntime loads
them like any exported segment. The model: ``x[N,4] -> relu(x W0) = h[N,8] -> h W1 = y[N,3]``, with
an exit head ``h We = e[N,3]`` on cut 1.
"""
from pathlib import Path

import numpy as np

from edgesplit.runtime.bundle.manifest import Cut, Exit, Manifest, Segment, TensorSpec
from edgesplit.runtime.bundle.store import Bundle, write_bundle

FLOAT = 1  # onnx.TensorProto.FLOAT


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(number: int, wire_type: int) -> bytes:
    return _varint((number << 3) | wire_type)


def _int(number: int, value: int) -> bytes:
    return _key(number, 0) + _varint(value)


def _bytes(number: int, value) -> bytes:
    if isinstance(value, str):
        value = value.encode("utf-8")
    return _key(number, 2) + _varint(len(value)) + value


def _value_info(name: str, dims) -> bytes:
    shape = b"".join(_bytes(1, _bytes(2, "N") if d is None else _int(1, d)) for d in dims)
    tensor_type = _int(1, FLOAT) + _bytes(2, shape)
    return _bytes(1, name) + _bytes(2, _bytes(1, tensor_type))


def _initializer(name: str, array: np.ndarray) -> bytes:
    array = np.ascontiguousarray(array, dtype="<f4")
    dims = b"".join(_int(1, d) for d in array.shape)
    return dims + _int(2, FLOAT) + _bytes(8, name) + _bytes(9, array.tobytes())


def _node(op: str, inputs, outputs, name: str) -> bytes:
    return (b"".join(_bytes(1, i) for i in inputs) + b"".join(_bytes(2, o) for o in outputs)
            + _bytes(3, name) + _bytes(4, op))


def onnx_model(nodes, initializers, inputs, outputs, opset: int = 13) -> bytes:
    """Bytes of a ModelProto. ``inputs``/``outputs``: (name, dims) with None for the batch."""
    graph = (b"".join(_bytes(1, n) for n in nodes) + _bytes(2, "g")
             + b"".join(_bytes(5, _initializer(k, v)) for k, v in initializers.items())
             + b"".join(_bytes(11, _value_info(*i)) for i in inputs)
             + b"".join(_bytes(12, _value_info(*o)) for o in outputs))
    return _int(1, 7) + _bytes(2, "edgesplit-tests") + _bytes(7, graph) + _bytes(8, _bytes(1, "") + _int(2, opset))


def _spec(name: str, width: int) -> TensorSpec:
    return TensorSpec(name, "float32", (None, width))


def write_tiny_bundle(out_dir, seed: int = 0, width: int = 8) -> Bundle:
    """Write and load the tiny bundle. ``width`` is the size of the tensor crossing cut 1."""
    rng = np.random.default_rng(seed)
    w0 = rng.standard_normal((4, width)).astype(np.float32)
    w1 = rng.standard_normal((width, 3)).astype(np.float32)
    we = rng.standard_normal((width, 3)).astype(np.float32)
    files = {
        "seg0.onnx": onnx_model([_node("MatMul", ["x", "W0"], ["m0"], "mm0"), _node("Relu", ["m0"], ["h"], "relu")],
                                {"W0": w0}, [("x", (None, 4))], [("h", (None, width))]),
        "seg1.onnx": onnx_model([_node("MatMul", ["h", "W1"], ["y"], "mm1")], {"W1": w1},
                                [("h", (None, width))], [("y", (None, 3))]),
        "head1.onnx": onnx_model([_node("MatMul", ["h", "We"], ["e"], "mme")], {"We": we},
                                 [("h", (None, width))], [("e", (None, 3))]),
    }
    x, h, y, e = _spec("x", 4), _spec("h", width), _spec("y", 3), _spec("e", 3)
    blank = "0" * 64
    manifest = Manifest(
        name="tiny", opset=13, inputs=(x,), outputs=(y,),
        segments=(Segment("seg0", "main", "seg0.onnx", "onnxruntime", blank, (x,), (h,), 4 * width),
                  Segment("seg1", "main", "seg1.onnx", "onnxruntime", blank, (h,), (y,), 3 * width),
                  Segment("head1", "exit", "head1.onnx", "onnxruntime", blank, (h,), (e,), 3 * width)),
        cuts=(Cut(0, (x,), 16, 0, 7 * width), Cut(1, (h,), 4 * width, 4 * width, 3 * width),
              Cut(2, (y,), 12, 7 * width, 0)),
        exits=(Exit(0, 1, "head1", None, 0.5, 7 * width), Exit(1, 2, None, None, 0.0, 7 * width)),
        provenance={"made_by": "tests/peer/tiny_bundle.py", "seed": seed},
    )

    def write_files(tmp: Path) -> None:
        for name, data in files.items():
            (tmp / name).write_bytes(data)

    return write_bundle(Path(out_dir), manifest, write_files)

