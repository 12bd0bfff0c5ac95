"""Reading a user's .npy (run, infer, submit): every bad file is one line naming it, never a traceback."""
import io
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from edgesplit.runtime.errors import InputError
from edgesplit.runtime.inputs import load_inputs, read_npy


def _npz_bytes():
    buffer = io.BytesIO()
    np.savez(buffer, x=np.zeros((2, 3), dtype=np.float32))
    return buffer.getvalue()


def _npy_bytes(array):
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


@pytest.mark.parametrize("content, message", [
    (b"", "the file is empty"),
    (_npz_bytes()[:40], r"holds several arrays \(.npz, a zip\)"),      # a cut-short .npz (zipfile raised BadZipFile)
    (_npz_bytes(), r"holds several arrays \(.npz, a zip\)"),           # an .npz renamed .npy
    (b"hello, not an array\n", r"not a .npy array \(it starts with"),
    (_npy_bytes(np.zeros((4, 3), dtype=np.float32))[:90], "the .npy is cut short"),   # in the data
    (_npy_bytes(np.zeros((4, 3), dtype=np.float32))[:40], "the .npy is cut short"),   # in the header
    (_npy_bytes(np.zeros(1, dtype=np.float64)).replace(b"(1,)", b"(274877906944,)"),  # 2 TiB claimed
     "larger than this machine's memory"),
    (_npy_bytes(np.array([{"a": 1}], dtype=object)), "not a readable .npy array"),  # never unpickled
])
def test_a_bad_file_is_one_clear_error(tmp_path, content, message):
    path = tmp_path / "x.npy"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message) as caught:
        read_npy(str(path), "--inputs")
    assert str(caught.value).startswith("--inputs %s: " % path)
    with pytest.raises(InputError):
        load_inputs(str(path))


def test_a_good_file_reads_back(tmp_path):
    path = tmp_path / "x.npy"
    np.save(str(path), np.arange(6, dtype=np.float32).reshape(2, 3))
    assert load_inputs(str(path)).shape == (2, 3)
    with pytest.raises(InputError, match="no such file"):
        read_npy(str(tmp_path / "missing.npy"))


@pytest.mark.parametrize("command", [["infer", "default", "{x}", "--out", "{o}"],
                                     ["submit", "--socket", "{s}", "--inputs", "{x}"]])
def test_commands_refuse_a_cut_short_npz_without_a_traceback(tmp_path, command):
    x = tmp_path / "trunc.npy"
    x.write_bytes(_npz_bytes()[:40])
    argv = [a.format(x=x, o=tmp_path / "o.npy", s=tmp_path / "api.sock") for a in command]
    done = subprocess.run([sys.executable, "-m", "edgesplit.runtime.cli"] + argv, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "holds several arrays" in done.stderr and str(x) in done.stderr, done.stderr
