"""A loaded frozen policy: features in, action out."""
from pathlib import Path
from typing import Any, Mapping, Optional, Tuple

import numpy as np

from edgesplit.policies_lite.decoders import make_decoder
from edgesplit.policies_lite.errors import PolicyError
from edgesplit.policies_lite.features import features_vector
from edgesplit.policies_lite.format import PolicySpec
from edgesplit.policies_lite.network import DenseNetwork

_ndarray = np.ndarray
_float64 = np.dtype(np.float64)


class FrozenPolicy:
    """Evaluate with ``decide(x)`` (x: 1-D, in ``features`` order) or ``decide_from(measurements)``.

    Immutable after loading, so threads may share one.
    """

    def __init__(self, spec: PolicySpec, arrays: Mapping[str, np.ndarray], source: Optional[Path] = None):
        self.spec = spec
        self.source = source
        self._network = DenseNetwork(spec, arrays)
        self._decode = make_decoder(spec.decoder)
        self._forward = self._network.forward

    @property
    def policy_id(self) -> str:
        return self.spec.policy_id

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def features(self) -> Tuple[str, ...]:
        return self.spec.features

    @property
    def decoder_type(self) -> str:
        return self.spec.decoder.to_meta()["type"]

    @property
    def provenance(self) -> Mapping[str, Any]:
        return self.spec.provenance

    def _as_input(self, x) -> np.ndarray:
        try:
            return np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise PolicyError("policy input is not a vector of numbers: %s" % exc) from None

    def evaluate(self, x) -> np.ndarray:
        """The raw output vector (before decoding), as a new array."""
        return self._forward(self._as_input(x))

    def decide(self, x):
        """The decoded action (EdgeMLAction or TaskChoice) for one input vector."""
        if type(x) is not _ndarray or x.dtype is not _float64:
            x = self._as_input(x)
        return self._decode(self._forward(x))

    def features_vector(self, measurements: Mapping[str, Any]) -> np.ndarray:
        return features_vector(self.spec.features, measurements)

    def decide_from(self, measurements: Mapping[str, Any]):
        return self._decode(self._forward(features_vector(self.spec.features, measurements)))

    def __repr__(self) -> str:
        return "FrozenPolicy(%s %s, %s -> %s, id %s)" % (self.kind, list(self.spec.layer_sizes),
                                                       len(self.features), self.decoder_type,
                                                       self.policy_id[:12])
