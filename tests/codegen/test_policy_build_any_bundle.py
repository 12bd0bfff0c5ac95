"""``edgesplit build-policy`` on a user's bundle (not the MNIST demo's): with or without exits, on any
shipped board, bounds from the board config, the bandwidth grid from the given recordings, and
nothing of the demo's scenario recorded in the policy."""
import json

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("torch")

from edgesplit.policies_lite import load_policy  # noqa: E402
from edgesplit.runtime.boards.config import load_named_board  # noqa: E402
from edgesplit.runtime.cli import main as cli_main  # noqa: E402
from edgesplit.runtime.emulation.link.recording_readers import read_recording  # noqa: E402
from edgesplit.runtime.emulation.link.shipped import resolve_recording  # noqa: E402

pytestmark = pytest.mark.workstation


@pytest.fixture(scope="module")
def cut_only_bundle(plain_user_model, tmp_path_factory):
    from edgesplit.codegen.split import split_model

    root, model = plain_user_model
    out = tmp_path_factory.mktemp("bundles") / "no_exits"
    split_model(model, out, cuts="auto")
    return out


def _build(bundle, root, out, *extra):
    return cli_main(["build-policy", "--bundle", str(bundle), "--images", str(root / "x.npy"), "--labels",
                     str(root / "y.npy"), "--out", str(out), "--no-progress", "--json"] + list(extra))


def test_a_bundle_without_exits_gets_cut_only_actions_on_any_board(plain_user_model, cut_only_bundle, tmp_path,
                                                                    capsys):
    root, _ = plain_user_model
    out = tmp_path / "p.npz"
    assert _build(cut_only_bundle, root, out, "--board", "rpi4", "--energy-bound", "400",
                  "--link", "norway_car_3", "--link", "ghent_bus_0001", "--fit-steps", "800") == 0
    report = json.loads(capsys.readouterr().out)
    assert all(row["thresholds"] == [] for row in report["table"])
    policy = load_policy(out)
    assert policy.spec.decoder.n_exits == 0
    meta = policy.provenance
    board = load_named_board("rpi4")
    assert meta["board"] == "rpi4" and meta["latency_bound_s"] == pytest.approx(board.bounds.latency_ms / 1e3)
    assert meta["energy_bound"] == 400.0 and meta["energy_unit"] == "mJ" and meta["workload_scale"] == 1.0
    assert meta["bundle_path"].endswith("no_exits") and len(meta["bundle_sha256"]) == 64
    assert meta["images"]["count"] == 1500 and meta["images"]["images_sha256"]
    assert "MNIST" not in json.dumps(meta) and "jetson_nano_cpu" not in json.dumps(meta)
    rates = np.concatenate([read_recording(resolve_recording(n)).bps for n in ("norway_car_3", "ghent_bus_0001")])
    low, high = meta["bandwidth_grid_mbps"]
    assert low <= rates[rates > 0].min() / 1e6 and high >= rates.max() / 1e6
    assert meta["links"] == ["norway_car_3", "ghent_bus_0001"]


def test_a_user_bundle_needs_its_own_data_and_bounds_in_the_planner_unit(plain_user_model, cut_only_bundle,
                                                                         tmp_path, capsys):
    root, _ = plain_user_model
    out = tmp_path / "p.npz"
    assert cli_main(["build-policy", "--bundle", str(cut_only_bundle), "--board", "rpi4", "--out", str(out),
                     "--energy-bound", "400"]) != 0
    assert "--images" in capsys.readouterr().err

    # rpi4's [bounds] energy is in MHz (its live proxy); the planner's emulated energy is in mJ.
    assert _build(cut_only_bundle, root, out, "--board", "rpi4") != 0
    err = capsys.readouterr().err
    assert "rpi4.toml" in err and "MHz" in err and "mJ" in err and "--energy-bound" in err

    assert _build(cut_only_bundle, root, out, "--board", "rpi4", "--energy-bound", "400", "--energy-unit",
                  "W") != 0
    assert "mJ" in capsys.readouterr().err

    assert cli_main(["build-policy", "--bundle", str(cut_only_bundle), "--board", "rpi4", "--energy-bound", "400",
                     "--images", str(root / "x.npy"), "--labels", str(root / "y.npy"), "--out", str(out),
                     "--limit", "20"]) != 0
    err = capsys.readouterr().err
    assert "20" in err and "at least 100" in err

    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((150, 28, 28), dtype=np.float32))
    assert cli_main(["build-policy", "--bundle", str(cut_only_bundle), "--board", "rpi4", "--energy-bound", "400",
                     "--images", str(wrong), "--labels", str(root / "y.npy"), "--out", str(out)]) != 0
    err = capsys.readouterr().err
    assert "wrong.npy" in err and "Traceback" not in err
    assert not out.exists()


def test_an_existing_out_is_refused_before_anything_is_read(tmp_path, capsys):
    import shutil

    from edgesplit.runtime.default_bundle import DEMO_POLICY_FILE

    out = tmp_path / "p.npz"
    shutil.copy(str(DEMO_POLICY_FILE), str(out))
    before = out.read_bytes()
    # The bundle does not exist: refused for it only after the --out check.
    assert cli_main(["build-policy", "--bundle", str(tmp_path / "nowhere"), "--board", "rpi4", "--out", str(out),
                     "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "--out %s already exists: pass --force to replace it, or choose another path" % out in err
    assert "nowhere" not in err
    assert out.read_bytes() == before


def test_force_replaces_an_existing_policy(plain_user_model, cut_only_bundle, tmp_path, capsys):
    import shutil

    from edgesplit.runtime.default_bundle import DEMO_POLICY_FILE

    root, _ = plain_user_model
    out = tmp_path / "p.npz"
    shutil.copy(str(DEMO_POLICY_FILE), str(out))
    assert _build(cut_only_bundle, root, out, "--board", "rpi4", "--energy-bound", "400", "--link", "norway_car_3",
                  "--fit-steps", "200", "--force") == 0
    report = json.loads(capsys.readouterr().out)
    assert load_policy(out).policy_id == report["policy_id"] != load_policy(DEMO_POLICY_FILE).policy_id
    assert [p.name for p in tmp_path.iterdir()] == ["p.npz"]  # no temporary or unchecked file left


def test_profiling_images_the_exit_heads_were_trained_on_are_warned_about(tmp_path, caplog):
    from types import SimpleNamespace

    from edgesplit.codegen.policy_build import warn_if_exit_training_data
    from edgesplit.runtime.bundle.manifest import file_sha256

    trained, other = tmp_path / "x.npy", tmp_path / "held_out.npy"
    np.save(str(trained), np.zeros((3, 2), np.float32))
    np.save(str(other), np.ones((3, 2), np.float32))
    provenance = {"tool": "edgesplit add-exits", "procedure": {"data": {"images_sha256": file_sha256(str(trained))}}}
    bundle = SimpleNamespace(manifest=SimpleNamespace(provenance=provenance, name="mine"))
    with caplog.at_level("WARNING"):
        warn_if_exit_training_data(bundle, str(other))
    assert not caplog.records
    with caplog.at_level("WARNING"):
        warn_if_exit_training_data(bundle, str(trained))
    assert "these are the images bundle mine's exit heads were trained on" in caplog.text
