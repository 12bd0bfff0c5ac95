"""check_tensor runs on every task's input (it was made cheaper): each refusal still names the tensor, where it came
from and what to do, and an array the model can take passes whatever its batch size."""
import subprocess
import sys

import numpy as np
import pytest

from edgesplit.runtime.bundle.manifest import TensorSpec
from edgesplit.runtime.errors import InputError
from edgesplit.runtime.segments.base import check_tensor

SPEC = TensorSpec(name="image", dtype="float32", shape=(None, 1, 28, 28))


@pytest.mark.parametrize("batch", [1, 3])
def test_an_array_of_the_specs_dtype_and_fixed_dims_passes_at_any_batch_size(batch):
    check_tensor(SPEC, np.zeros((batch, 1, 28, 28), dtype=np.float32), "input")


@pytest.mark.parametrize("array, message", [
    ([[0.0]], r"input: tensor 'image' must be a numpy array, got list"),
    (np.zeros((1, 1, 28, 28), dtype=np.float64),
     r"input: tensor 'image' has dtype float64, expected float32 \(convert with .astype\('float32'\)\)"),
    (np.zeros((1, 28, 28), dtype=np.float32),
     r"input: tensor 'image' has shape \(1, 28, 28\), expected \(None, 1, 28, 28\) \(None = any size\)"),
    (np.zeros((1, 1, 28, 27), dtype=np.float32),
     r"input: tensor 'image' has shape \(1, 1, 28, 27\), expected \(None, 1, 28, 28\)"),
    (np.zeros((0, 1, 28, 28), dtype=np.float32), r"input: tensor 'image' is empty \(shape \(0, 1, 28, 28\)\)"),
])
def test_each_refusal_names_the_tensor_and_the_problem(array, message):
    with pytest.raises(InputError, match=message):
        check_tensor(SPEC, array, "input")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_value_is_refused_with_its_row(bad):
    array = np.zeros((3, 1, 28, 28), dtype=np.float32)
    array[2, 0, 5, 7] = bad
    with pytest.raises(InputError, match=r"tensor 'image' has 1 non-finite value\(s\) .* in row 2 of the batch axis"):
        check_tensor(SPEC, array, "input")


@pytest.mark.parametrize("dtype, value", [("float64", 1e307), ("float32", 3e37)])
def test_finite_values_whose_sum_overflows_pass(dtype, value):
    array = np.full((1, 1, 28, 28), value, dtype=dtype)  # finite values whose sum in their own type is infinite
    with np.errstate(over="ignore"):  # the overflow is the point: the exact check must pass them
        assert np.isfinite(array).all() and not np.isfinite(array.sum())
        check_tensor(TensorSpec(name="image", dtype=dtype, shape=(None, 1, 28, 28)), array, "input")


def test_an_overflowing_fast_sum_is_no_error_under_w_error():
    """The fast sum of finite float32 values can overflow: numpy's warning about it must not become the answer."""
    code = ("import numpy as np\n"
            "from edgesplit.runtime.bundle.manifest import TensorSpec\n"
            "from edgesplit.runtime.segments.base import check_tensor\n"
            "check_tensor(TensorSpec(name='image', dtype='float32', shape=(None, 1, 28, 28)),\n"
            "             np.full((1, 1, 28, 28), 3e37, dtype=np.float32), 'input')\n"
            "np.add.reduce(np.full(4, 3e38, dtype=np.float32), None)  # elsewhere the warning is still an error\n")
    done = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True)
    assert done.returncode != 0 and "<string>\", line 6" in done.stderr, done.stderr
    assert "RuntimeWarning: overflow encountered in reduce" in done.stderr


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_one_bad_value_is_found_in_any_float_width(dtype, bad):
    array = np.zeros((2, 1, 28, 28), dtype=dtype)
    array[1, 0, 27, 27] = bad
    with pytest.raises(InputError, match=r"1 non-finite value\(s\) .* in row 1 of the batch axis"):
        check_tensor(TensorSpec(name="image", dtype=dtype, shape=(None, 1, 28, 28)), array, "input")
