"""Board pacing: profiles load with provenance; paced segments take the profile's emulated time."""
from pathlib import Path

import pytest

from edgesplit.runtime.boards.config import board_configs_dir, list_board_configs, load_named_board

from edgesplit.runtime.bundle.store import load_bundle
from edgesplit.runtime.default_bundle import default_bundle_path
from edgesplit.runtime.emulation import Emulation, EmulationError, load_emulated_board, profile_names
from edgesplit.runtime.executor.executor import Executor


def test_profiles_carry_their_calibration():
    rpi = load_emulated_board("rpi4")
    assert rpi.macs_per_s == 1239961064  # the Framework Tax calibration, unchanged by the move into rpi4.toml
    assert rpi.provenance["macs_per_s"].startswith("measured: Framework Tax")
    assert rpi.provenance["board_config"].endswith("rpi4.toml")
    assert rpi.to_dict()["emulated"] is True and rpi.to_dict()["basis"] == "measured"
    assert rpi.energy_mj(0.1, 0.1) == pytest.approx(1000 * (rpi.busy_power_w + rpi.idle_power_w) * 0.1)


def test_every_shipped_board_is_both_a_live_config_and_an_emulated_profile():
    names = list_board_configs()
    assert profile_names() == names and len(names) == 9
    for name in names:
        live = load_named_board(name)
        emulated = load_emulated_board(name)
        assert emulated.name == live.name == name
        assert emulated.macs_per_s == live.emulation.macs_per_s and emulated.busy_power_w >= emulated.idle_power_w
        assert emulated.compute_s(emulated.macs_per_s) == pytest.approx(1.0)
    # Derived figures keep the order of the published peaks they come from.
    speed = {n: load_emulated_board(n).macs_per_s for n in names}
    assert speed["rpi4"] < speed["rpi5"] < speed["jetson_nano_cpu"] * 1e3
    assert speed["jetson_nano"] < speed["jetson_tx2"] < speed["jetson_xavier_nx"] < speed["jetson_orin_nano"]


def test_unknown_profile_is_refused_by_name():
    with pytest.raises(EmulationError, match="known boards: jetson_nano, jetson_nano_cpu"):
        load_emulated_board("nope")


def test_a_board_without_an_emulation_table_is_refused_with_what_to_do(tmp_path, monkeypatch):
    text = (Path(board_configs_dir()) / "rpi4.toml").read_text().split("[emulation]")[0]
    (tmp_path / "rpi4.toml").write_text(text)
    monkeypatch.setenv("EDGESPLIT_BOARD_CONFIGS", str(tmp_path))
    with pytest.raises(EmulationError, match=r"rpi4.toml has no \[emulation\] table.*docs/boards.md"):
        load_emulated_board("rpi4")


def test_paced_executor_reports_the_boards_time_not_this_machines():
    bundle = load_bundle(default_bundle_path())
    emulation = Emulation(load_emulated_board("jetson_nano_cpu"), workload_scale=20.0, speedup=4.0)
    executor = Executor(bundle, clock=emulation.clock, runner_factory=emulation.runner_factory(), warm_up=False)
    x = __import__("numpy").zeros((1, 1, 28, 28), dtype="float32")
    result = executor.run(x, use_exits=False)
    expected = sum(emulation.segment_seconds(s.macs) for s in bundle.manifest.main)
    # The paced time is a floor (sleep may overshoot a little, never undershoot).
    assert result.compute_seconds >= expected * 0.99
    assert emulation.describe()["emulated"] is True
