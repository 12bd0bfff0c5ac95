"""Building a policy's input vector from named measurements."""
import math
from typing import Any, Mapping, Sequence

import numpy as np

from edgesplit.policies_lite.errors import PolicyError


def missing_features(required: Sequence[str], available) -> list:
    """The names in ``required`` that ``available`` (any container of names) lacks, in order."""
    return [name for name in required if name not in available]


def features_vector(names: Sequence[str], mapping: Mapping[str, Any]) -> np.ndarray:
    """``mapping``'s values for ``names``, in that order, as a float64 vector; every value finite."""
    try:
        values = [mapping[name] for name in names]
    except KeyError:
        missing = missing_features(names, mapping)
        raise PolicyError("missing feature(s) %s: the policy needs %s, the measurements have %s"
                          % (", ".join(missing), ", ".join(names), ", ".join(sorted(mapping)))) from None
    for name, value in zip(names, values):
        try:
            ok = math.isfinite(value)
        except TypeError:
            raise PolicyError("feature %r: expected a number, got %r" % (name, value)) from None
        if not ok:
            raise PolicyError("feature %r is %r: a policy needs finite measurements (is the window empty?)"
                              % (name, value))
    return np.array(values, dtype=np.float64)
