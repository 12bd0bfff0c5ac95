"""Task inputs and exit thresholds as users give them on the command line (``.npy`` files, ``0.2,0.3``)."""
from typing import List, Optional

import numpy as np

from edgesplit.runtime.errors import InputError


def parse_thresholds(text: Optional[str]) -> Optional[List[float]]:
    """``"0.2,0.3"`` -> [0.2, 0.3] (normalised entropies, one per early exit); None stays None."""
    if text is None:
        return None
    values = []
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            raise InputError("--thresholds: %r is not a number" % part) from None
        if not 0.0 <= value <= 1.0:
            raise InputError("--thresholds: %s is outside [0, 1] (normalised entropy)" % part)
        values.append(value)
    return values


def load_inputs(path: str) -> np.ndarray:
    """A single-array ``.npy`` with at least one row along the first (batch) axis."""
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise InputError("%s: no such file" % path) from None
    except EOFError:  # numpy's answer to an empty file
        raise InputError("%s: the file is empty, not a .npy array; save inputs with numpy.save" % path) from None
    except (OSError, ValueError) as exc:
        raise InputError("%s: not a readable .npy array (%s); save inputs with numpy.save" % (path, exc)) from None
    if not isinstance(array, np.ndarray):
        raise InputError("%s: holds several arrays (.npz); pass a single-array .npy" % path)
    if array.ndim == 0 or array.shape[0] == 0:
        raise InputError("%s: needs at least one input along the first (batch) axis, got shape %s"
                         % (path, array.shape))
    return array
