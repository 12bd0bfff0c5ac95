"""``edgesplit profile --board NAME`` refuses to store this host's timings under another board's name."""
import subprocess
import sys

from support import fake_boards
from edgesplit.runtime.bundle.store import load_bundle
from edgesplit.runtime.profiling.store import list_profiles, load_profile

QUICK = ["--repeats", "2", "--warmup", "0"]


def edgesplit(*args, env=None):
    import os

    return subprocess.run([sys.executable, "-m", "edgesplit.runtime.cli"] + [str(a) for a in args],
                          capture_output=True, text=True, timeout=120, env=dict(os.environ, **(env or {})))


def test_profiling_as_another_board_is_refused_naming_what_was_detected(tmp_path, bundle_dir):
    root = tmp_path / "x86_root"  # no device tree, no NVIDIA device node: a plain x86 host
    root.mkdir()
    done = edgesplit("profile", bundle_dir, "--board", "rpi4", *QUICK, env={"EDGESPLIT_SYSROOT": str(root)})
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "rpi4" in done.stderr and "detected as x86_" in done.stderr and "--force" in done.stderr
    assert list_profiles(bundle_dir) == []


def test_force_stores_the_profile_and_says_where_it_was_measured(tmp_path, bundle_dir):
    root = tmp_path / "x86_root"  # no device tree, no NVIDIA device node: a plain x86 host
    root.mkdir()
    done = edgesplit("profile", bundle_dir, "--board", "rpi4", "--force", *QUICK,
                     env={"EDGESPLIT_SYSROOT": str(root)})
    assert done.returncode == 0, done.stderr
    assert "measured on a host detected as x86_" in done.stderr
    assert load_profile(load_bundle(bundle_dir), "rpi4")["board"] == "rpi4"


def test_the_detected_board_needs_no_force(tmp_path, bundle_dir):
    root = fake_boards.build("rpi4", tmp_path / "root")
    done = edgesplit("profile", bundle_dir, "--board", "rpi4", *QUICK, env={"EDGESPLIT_SYSROOT": str(root)})
    assert done.returncode == 0, done.stderr
    assert list_profiles(bundle_dir) == ["rpi4"]
