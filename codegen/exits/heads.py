"""One exit head: average pooling to a small grid, then a one-hidden-layer MLP, trained in torch on
pooled frozen features and written as a plain ONNX graph (AveragePool, Flatten, Gemm, Relu, Gemm).

The size is chosen against the model's compute, so that a head costs little next to what an exit
saves: the finest grid of 4x4, 2x2 or 1x1 (global pooling) whose first layer stays within
HEAD_MACS_SHARE of the model's MACs with HIDDEN units; if even global pooling does not fit, fewer
hidden units (at least MIN_HIDDEN). Inputs are standardised with the training split's mean and
std, folded into the first layer at export, so the ONNX head reads the raw feature map.
"""
import logging
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from edgesplit.codegen.graph import ModelError
from edgesplit.runtime.bundle.manifest import TensorSpec

log = logging.getLogger(__name__)

GRIDS = (4, 2, 1)
HIDDEN = 64
MIN_HIDDEN = 16
HEAD_MACS_SHARE = 0.03


@dataclass(frozen=True)
class HeadDesign:
    kernel: Optional[Tuple[int, int]]  # AveragePool kernel = stride; None for a (N, features) tensor
    features: int  # inputs of the first layer after pooling
    hidden: int
    classes: int

    @property
    def macs(self) -> int:
        return self.features * self.hidden + self.hidden * self.classes

    def describe(self) -> str:
        pool = "none" if self.kernel is None else "AveragePool %dx%d" % self.kernel
        return "%s -> %d features -> Gemm %d -> Relu -> Gemm %d" % (pool, self.features, self.hidden, self.classes)


def design_head(spec: TensorSpec, classes: int, model_macs: int) -> HeadDesign:
    dims = spec.shape[1:]
    if any(d is None for d in dims):
        raise ModelError("cut tensor %r has a dynamic dimension %s: exits need a fixed feature shape (export the "
                         "model with a fixed input size)" % (spec.name, list(spec.shape)))
    budget = max(HEAD_MACS_SHARE * model_macs, 1.0)
    if len(dims) == 1:
        hidden = _hidden_for(dims[0], budget)
        return HeadDesign(None, dims[0], hidden, classes)
    c, h, w = dims
    for grid in GRIDS:
        kh, kw = -(-h // grid), -(-w // grid)  # ceil: at most grid x grid cells
        features = c * (h // kh) * (w // kw)
        if features * HIDDEN <= budget or grid == 1:
            return HeadDesign((kh, kw), features, _hidden_for(features, budget), classes)
    raise AssertionError("unreachable: grid 1 always returns")


def _hidden_for(features: int, budget: float) -> int:
    return int(min(HIDDEN, max(MIN_HIDDEN, budget // max(features, 1))))


def train_head(x: np.ndarray, y: np.ndarray, design: HeadDesign, epochs: int, seed: int, progress=None):
    """Adam on cross-entropy, mini-batches of 64, seeded, one thread; returns (w1, b1, w2, b2, mean, std)."""
    import torch
    from torch import nn

    mean = x.mean(axis=0).astype(np.float64)
    std = x.std(axis=0).astype(np.float64)
    std[std < 1e-6] = 1.0
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        net = nn.Sequential(nn.Linear(design.features, design.hidden), nn.ReLU(), nn.Linear(design.hidden,
                                                                                            design.classes))
        optimiser = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=1e-4)
        xs = torch.from_numpy(((x - mean) / std).astype(np.float32))
        ys = torch.from_numpy(np.asarray(y, dtype=np.int64))
        loss_fn = nn.CrossEntropyLoss()
        epochs_range = range(epochs)
        for _ in (progress(epochs_range) if progress else epochs_range):
            order = torch.randperm(len(ys), generator=generator)
            for start in range(0, len(ys), 64):
                batch = order[start:start + 64]
                optimiser.zero_grad()
                loss = loss_fn(net(xs[batch]), ys[batch])
                loss.backward()
                optimiser.step()
        first, last = net[0], net[2]
        return (first.weight.detach().double().numpy(), first.bias.detach().double().numpy(),
                last.weight.detach().double().numpy(), last.bias.detach().double().numpy(), mean, std)
    finally:
        torch.set_num_threads(threads)


def head_model(spec: TensorSpec, design: HeadDesign, params, output_name: str, opset: int, ir_version: int):
    """The ONNX head reading ``spec`` (the main model's tensor, by name), standardisation folded in."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w1, b1, w2, b2, mean, std = params
    w1_folded = w1 / std[None, :]
    b1_folded = b1 - w1_folded @ mean
    initialisers = [numpy_helper.from_array(np.asarray(a, dtype=np.float32), name) for a, name in
                    ((w1_folded, output_name + "_w1"), (b1_folded, output_name + "_b1"),
                     (w2, output_name + "_w2"), (b2, output_name + "_b2"))]
    nodes, current = [], spec.name
    if design.kernel is not None:
        nodes.append(helper.make_node("AveragePool", [current], [output_name + "_pooled"],
                                      kernel_shape=list(design.kernel), strides=list(design.kernel)))
        current = output_name + "_pooled"
        nodes.append(helper.make_node("Flatten", [current], [output_name + "_flat"], axis=1))
        current = output_name + "_flat"
    nodes += [helper.make_node("Gemm", [current, output_name + "_w1", output_name + "_b1"], [output_name + "_h"],
                               transB=1),
              helper.make_node("Relu", [output_name + "_h"], [output_name + "_r"]),
              helper.make_node("Gemm", [output_name + "_r", output_name + "_w2", output_name + "_b2"], [output_name],
                               transB=1)]
    shape = ["batch" if d is None else d for d in spec.shape]
    graph = helper.make_graph(nodes, output_name.replace("_logits", "_head"),
                              [helper.make_tensor_value_info(spec.name, TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info(output_name, TensorProto.FLOAT,
                                                             [shape[0], design.classes])], initialisers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", max(opset, 7))],
                              producer_name="edgesplit add-exits")
    model.ir_version = max(4, min(ir_version, onnx.IR_VERSION))
    onnx.checker.check_model(model)
    return model

