"""Commands never write into the installed package: ``profile default`` and ``build-default``."""
import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from edgesplit.runtime.bundle.store import load_bundle
from edgesplit.runtime.default_bundle import default_bundle_path
from edgesplit.runtime.package_paths import installed_location
from edgesplit.runtime.profiling.store import list_profiles, load_profile

QUICK = ["--board", "x86_cpu", "--repeats", "2", "--warmup", "0"]


def edgesplit(*args):
    return subprocess.run([sys.executable, "-m", "edgesplit.runtime.cli"] + [str(a) for a in args],
                          capture_output=True, text=True, timeout=120)


def test_the_embedded_bundle_is_inside_the_package_and_a_temp_dir_is_not(tmp_path):
    assert installed_location(default_bundle_path()) is not None
    assert installed_location(tmp_path) is None


def test_profile_default_is_refused_without_out_and_writes_nothing():
    before = list_profiles(default_bundle_path())
    done = edgesplit("profile", "default", *QUICK)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "inside the installed package" in done.stderr and "--out DIR" in done.stderr
    assert list_profiles(default_bundle_path()) == before


def test_profile_default_out_dir_copies_the_bundle_and_says_where_it_wrote(tmp_path):
    out = tmp_path / "my_bundle"
    done = edgesplit("profile", "default", *QUICK, "--out", out)
    assert done.returncode == 0, done.stderr
    assert "saved %s" % (out / "profiles" / "x86_cpu.json") in done.stdout
    copy = load_bundle(out)
    assert copy.hash == load_bundle(default_bundle_path()).hash
    assert load_profile(copy, "x86_cpu")["board"] == "x86_cpu"
    # Again into the same copy (another board, or a re-measure): allowed; into another bundle: refused.
    assert edgesplit("profile", "default", *QUICK, "--out", out).returncode == 0
    other = tmp_path / "other"
    other.mkdir()
    (other / "stray.txt").write_text("x")
    refused = edgesplit("profile", "default", *QUICK, "--out", other)
    assert refused.returncode == 1 and "not a copy of" in refused.stderr


def test_profile_json_names_the_file_written(tmp_path):
    out = tmp_path / "b"
    done = edgesplit("profile", "default", *QUICK, "--out", out, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["board"] == "x86_cpu"
    assert "saved %s" % (out / "profiles" / "x86_cpu.json") in done.stderr


@pytest.mark.workstation
def test_build_default_needs_out_and_never_writes_into_site_packages():
    pytest.importorskip("torch")
    done = edgesplit("build-default")
    assert done.returncode == 2 and "--out" in done.stderr
    target = Path(sysconfig.get_paths()["purelib"]) / "edgesplit-build-default-test"
    refused = edgesplit("build-default", "--out", target, "--epochs", "1")
    assert refused.returncode == 1 and "inside the installed package" in refused.stderr
    assert not target.exists()
