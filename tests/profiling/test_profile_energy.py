"""The profile reads the board's energy proxy busy and idle (real sampler, this host's /proc/cpuinfo or cpufreq);
build-policy models a task's reading from the two means; the schema checks the record."""
import copy
import logging

import numpy as np
import pytest

from edgesplit.runtime.boards.config import load_named_board
from edgesplit.runtime.bundle.store import load_bundle
from edgesplit.runtime.device.pipeline import open_sampler
from edgesplit.runtime.profiling.energy import measure_proxy, proxy_energy_model
from edgesplit.runtime.profiling.measure import profile_bundle
from edgesplit.runtime.profiling.schema import ProfileError, validate_profile
from edgesplit.runtime.segments.registry import open_runner


@pytest.fixture
def x86_sampler():
    sampler, _ = open_sampler(load_named_board("x86_cpu"))
    yield sampler
    sampler.stop()


def test_the_proxy_is_read_idle_then_while_the_work_loops(x86_sampler):
    calls = []
    reading = measure_proxy(x86_sampler, "cpu_freq", 0.3, lambda: calls.append(sum(range(2000))))
    assert reading["proxy"] == "cpu_freq" and reading["unit"] == "MHz" and reading["source"]
    assert reading["busy_mean"] > 0 and reading["idle_mean"] > 0
    assert reading["busy_samples"] >= 3 and reading["idle_samples"] >= 3 and reading["rate_hz"] == 10.0
    assert len(calls) > 10  # the work really looped during the busy phase


def test_a_reading_the_board_does_not_sample_gives_no_record(x86_sampler, caplog):
    with caplog.at_level(logging.WARNING):
        assert measure_proxy(x86_sampler, "gpu_freq", 0.1, lambda: None) is None
    assert "gpu_freq" in caplog.text and "no energy" in caplog.text


def test_the_profile_carries_the_record_and_the_schema_checks_it(tmp_path, bundle_dir, x86_sampler):
    bundle = load_bundle(bundle_dir)
    profile = profile_bundle(bundle, "x86_cpu", open_runner, warmup=1, repeats=2,
                             energy=lambda work: measure_proxy(x86_sampler, "cpu_freq", 0.3, work))
    assert profile["energy"]["unit"] == "MHz"
    older = profile_bundle(bundle, "x86_cpu", open_runner, warmup=1, repeats=2)
    assert "energy" not in older  # a profile without the record is still valid (written before it existed)
    unread = dict(older, energy=None)
    validate_profile(unread)
    broken = copy.deepcopy(profile)
    del broken["energy"]["unit"]
    with pytest.raises(ProfileError, match="energy.*unit"):
        validate_profile(broken, "p.json")
    broken = copy.deepcopy(profile)
    broken["energy"]["busy_mean"] = -1
    with pytest.raises(ProfileError, match="energy.busy_mean"):
        validate_profile(broken, "p.json")


def test_a_tasks_reading_is_the_busy_and_idle_means_weighted_by_time():
    model = proxy_energy_model({"busy_mean": 2000.0, "idle_mean": 1000.0})
    got = model(np.array([1.0, 0.0, 0.5, 0.0]), np.array([3.0, 2.0, 0.0, 0.0]))
    assert got.tolist() == [1250.0, 1000.0, 2000.0, 1000.0]  # an empty task reads the idle mean
