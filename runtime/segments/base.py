"""The interface every segment backend implements, and the checks they share."""
import math
import warnings
from typing import Dict, Mapping, Sequence

import numpy as np

from edgesplit.runtime.bundle.manifest import TensorSpec
from edgesplit.runtime.errors import InputError

# check_tensor runs on every task's input: these are looked up once, not per call.
_dtypes = {}  # type: Dict[str, np.dtype]  # manifest dtype name -> numpy dtype
_add_reduce = np.add.reduce
_float64 = np.float64
_isfinite = math.isfinite
# check_finite's fast sum overflows on finite float32 values above about 1e33 (the exact check then passes them): that
# is expected, and numpy's warning about it would be noise (an error under -W error), so only it is silenced, here.
warnings.filterwarnings("ignore", message="overflow encountered in reduce", category=RuntimeWarning,
                        module=__name__)


class SegmentRunner:
    """Runs one exported segment: named input arrays in, named output arrays out."""

    segment_id = ""

    def run(self, feeds: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
        raise NotImplementedError


def zeros_for(specs: Sequence[TensorSpec], batch: int = 1) -> Dict[str, np.ndarray]:
    """Zero arrays of the right shape and dtype (dynamic dims get ``batch``), e.g. for a warm-up."""
    feeds = {}
    for spec in specs:
        shape = [batch if dim is None else dim for dim in spec.shape]
        feeds[spec.name] = np.zeros(shape, dtype=spec.dtype)
    return feeds


def check_tensor(spec: TensorSpec, array: np.ndarray, where: str) -> None:
    """Refuse an array whose dtype or fixed dimensions differ from the manifest's spec."""
    if not isinstance(array, np.ndarray):
        raise InputError("%s: tensor %r must be a numpy array, got %s" % (where, spec.name, type(array).__name__))
    dtype = _dtypes.get(spec.dtype)
    if dtype is None:
        dtype = _dtypes[spec.dtype] = np.dtype(spec.dtype)
    if array.dtype != dtype:
        raise InputError("%s: tensor %r has dtype %s, expected %s (convert with .astype(%r))"
                         % (where, spec.name, array.dtype, spec.dtype, spec.dtype))
    shape, wanted = array.shape, spec.shape
    if len(shape) != len(wanted) or not all([want is None or got == want for got, want in zip(shape, wanted)]):
        raise InputError("%s: tensor %r has shape %s, expected %s (None = any size)"
                         % (where, spec.name, tuple(array.shape), tuple(spec.shape)))
    if array.size == 0:  # a model answers an empty batch with an error deep inside the backend
        raise InputError("%s: tensor %r is empty (shape %s): send at least one row"
                         % (where, spec.name, tuple(array.shape)))
    check_finite(spec.name, array, where)


def check_finite(name: str, array: np.ndarray, where: str) -> None:
    """Refuse NaN or infinity in a float tensor: a model answers them with confident garbage.

    The sum is the fast path (one pass, no temporary the size of the array: NaN or infinity in any
    value makes it non-finite); only when it is not finite, which finite values can make too by
    overflowing, is the exact, row-naming check paid for. Float32 and wider add in their own type
    (a third faster than converting to float64 on the way); narrower floats add in float64.
    """
    if array.dtype.kind != "f" or array.size == 0:
        return
    total = _add_reduce(array, None) if array.dtype.itemsize >= 4 else _add_reduce(array, None, _float64)
    if _isfinite(total):  # math.isfinite: a numpy scalar's ufunc costs 1 us more
        return
    finite = np.isfinite(array)
    if finite.all():
        return  # finite values whose sum overflowed float64
    bad = np.argwhere(~finite)
    row = int(bad[0][0]) if array.ndim else 0
    value = array[tuple(bad[0])]
    raise InputError("%s: tensor %r has %d non-finite value(s) (the first, %s, in row %d of the batch axis): "
                     "inputs must be finite numbers; check the preprocessing"
                     % (where, name, bad.shape[0], value, row))
