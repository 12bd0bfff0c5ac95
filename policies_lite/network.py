"""The forward pass: dense layers evaluated with a handful of in-place numpy calls.

Normalisation is folded into the first layer at load time (W0 / std, b0 - W0 @ (mean / std)), so a
decision costs only the matrix-vector products: one ``dot``, an in-place bias add and an in-place
activation per layer. (Preallocated ``out=`` buffers were measured too: faster on numpy 2, slower on
numpy 1.24 and not thread-safe; this form is within 5% of the bare expression on both.)
"""
from typing import Callable, List, Mapping, Optional, Tuple

import numpy as np

from edgesplit.policies_lite.errors import PolicyError
from edgesplit.policies_lite.format import PolicySpec

_dot = np.dot
_tanh = np.tanh


# Each activation is called as fn(buf, out=buf); tanh is the ufunc itself (no Python frame).
def _relu(buf: np.ndarray, out: np.ndarray) -> None:
    np.maximum(buf, 0.0, out=out)


def _sigmoid(buf: np.ndarray, out: np.ndarray) -> None:
    # 0.5 * (1 + tanh(x / 2)): the same function as 1 / (1 + exp(-x)) without exp overflow warnings.
    np.multiply(buf, 0.5, out=out)
    _tanh(out, out=out)
    np.multiply(out, 0.5, out=out)
    np.add(out, 0.5, out=out)


_ACTIVATION_FNS = {"tanh": _tanh, "relu": _relu, "sigmoid": _sigmoid, "identity": None}

Layer = Tuple[np.ndarray, np.ndarray, Optional[Callable[..., None]]]


class DenseNetwork:
    """``layer_sizes[0]`` inputs (raw, un-normalised) -> ``layer_sizes[-1]`` outputs."""

    def __init__(self, spec: PolicySpec, arrays: Mapping[str, np.ndarray]):
        mean = np.asarray(spec.mean, dtype=np.float64)
        inv_std = 1.0 / np.asarray(spec.std, dtype=np.float64)
        self.n_inputs = spec.layer_sizes[0]
        self.n_outputs = spec.layer_sizes[-1]
        self._input_shape = (self.n_inputs,)
        self._layers = []  # type: List[Layer]
        for i, activation in enumerate(spec.activations):
            weight = np.array(arrays["W%d" % i], dtype=np.float64, order="C")
            bias = np.array(arrays["b%d" % i], dtype=np.float64)
            if i == 0:
                weight = np.ascontiguousarray(weight * inv_std[np.newaxis, :])
                bias = bias - weight.dot(mean)
                if not (np.isfinite(weight).all() and np.isfinite(bias).all()):
                    raise PolicyError("normalisation: folding mean/std into layer 0 overflows (a std near 0 "
                                      "or a huge mean): store std >= 1e-12 and sane means")
            self._layers.append((weight, bias, _ACTIVATION_FNS[activation]))

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Outputs (a new array) for one float64 input vector in feature order."""
        if x.shape != self._input_shape:
            raise PolicyError("policy input has shape %s: expected (%d,) (one value per feature, in the "
                              "policy's feature order)" % (x.shape, self.n_inputs))
        h = x
        for weight, bias, activation in self._layers:
            h = _dot(weight, h)
            h += bias
            if activation is not None:
                activation(h, out=h)
        return h
