"""build-policy from a profile that read the live board's energy proxy: what it refuses, and why.

The successful build and a serve daemon using it: tests/daemon/test_daemon_live_policy.py."""
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.workstation


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "edgesplit.runtime.cli"] + [str(a) for a in args],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)


@pytest.fixture(scope="module")
def profiled(tmp_path_factory):
    from edgesplit.runtime.default_bundle import default_bundle_path, load_heldout

    root = tmp_path_factory.mktemp("live_refusals")
    bundle = root / "bundle"
    shutil.copytree(str(default_bundle_path()), str(bundle))
    done = _cli("profile", bundle, "--board", "x86_cpu", "--force", "--repeats", 2, "--warmup", 0,
                "--energy-seconds", 0.3)
    assert done.returncode == 0, done.stderr.decode()
    assert "energy proxy cpu_freq" in done.stdout.decode()
    images, labels = load_heldout()
    np.save(root / "x.npy", images[:120])
    np.save(root / "y.npy", labels[:120])
    return root, bundle


def _build(root, bundle, *extra):
    return _cli("build-policy", "--bundle", bundle, "--measured-profile", "x86_cpu", "--images", root / "x.npy",
                "--labels", root / "y.npy", "--no-progress", "--fit-steps", 200, "--out", root / "p.npz",
                "--force", *extra)  # --force: each test's refusal is its own, whichever test wrote p.npz first


def test_another_board_than_the_profiles_is_refused(profiled):
    root, bundle = profiled
    done = _build(root, bundle, "--board", "rpi4")
    err = done.stderr.decode()
    assert done.returncode != 0 and "Traceback" not in err
    assert "--board rpi4" in err and "x86_cpu" in err and "--energy-unit mJ" in err


def test_an_energy_unit_that_is_neither_the_proxys_nor_mj_is_refused(profiled):
    root, bundle = profiled
    done = _build(root, bundle, "--energy-unit", "W")
    err = done.stderr.decode()
    assert done.returncode != 0 and "Traceback" not in err
    assert "--energy-unit W" in err and "cpu_freq" in err and "MHz" in err and "mJ" in err


def test_a_profile_without_the_reading_cannot_plan_in_a_live_unit(profiled, tmp_path):
    root, bundle = profiled
    copy = tmp_path / "bundle"
    shutil.copytree(str(bundle), str(copy))
    path = copy / "profiles" / "x86_cpu.json"
    profile = json.loads(path.read_text())
    del profile["energy"]  # as written before profiles read the proxy
    path.write_text(json.dumps(profile))
    done = _build(root, copy, "--energy-unit", "MHz")
    err = done.stderr.decode()
    assert done.returncode != 0 and "Traceback" not in err
    assert "records no energy proxy reading" in err and "edgesplit profile" in err


def test_energy_unit_mj_plans_the_same_profile_with_the_emulated_power_model(profiled):
    from edgesplit.policies_lite import load_policy

    root, bundle = profiled
    done = _build(root, bundle, "--energy-unit", "mJ", "--board", "rpi4", "--energy-bound", 400,
                  "--link", "norway_car_3")
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    provenance = load_policy(root / "p.npz").provenance
    assert provenance["energy_unit"] == "mJ" and provenance["energy_proxy"] == "emulated"
    assert provenance["board"] == "rpi4" and provenance["measured_profile"]["board"] == "x86_cpu"
