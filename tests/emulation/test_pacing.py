"""Board pacing: profiles load with provenance; paced segments take the profile's emulated time."""
import pytest

from edgesplit.runtime.bundle.store import load_bundle
from edgesplit.runtime.default_bundle import default_bundle_path
from edgesplit.runtime.emulation import Emulation, EmulationError, load_emulated_board, profile_names
from edgesplit.runtime.executor.executor import Executor


def test_profiles_carry_their_calibration():
    assert {"jetson_nano", "jetson_nano_cpu", "rpi4"} <= set(profile_names())
    rpi = load_emulated_board("rpi4")
    assert rpi.macs_per_s > 1e8
    assert rpi.provenance["calibration"]
    assert rpi.to_dict()["emulated"] is True
    assert rpi.energy_mj(0.1, 0.1) == pytest.approx(1000 * (rpi.busy_power_w + rpi.idle_power_w) * 0.1)


def test_unknown_profile_is_refused_by_name():
    with pytest.raises(EmulationError, match="choose one of"):
        load_emulated_board("nope")


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
