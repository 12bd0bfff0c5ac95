from edgesplit.policies_lite.provenance import recorded_bounds


def test_both_shapes_of_recorded_bounds_read_the_same():
    trained = {"bounds": {"latency_s": 0.1, "energy": 900.0, "other": 1}}
    built = {"latency_bound_s": 0.1, "energy_bound": 900.0}
    assert recorded_bounds(trained) == recorded_bounds(built) == {"latency_s": 0.1, "energy": 900.0}


def test_an_energy_bound_recorded_as_none_is_kept_and_one_not_recorded_is_absent():
    assert recorded_bounds({"bounds": {"latency_s": 0.1, "energy": None}}) == {"latency_s": 0.1, "energy": None}
    assert recorded_bounds({"latency_bound_s": 0.2}) == {"latency_s": 0.2}
    assert recorded_bounds({"traces": [], "algorithm": "x", "date": "d"}) == {}


def test_values_come_back_as_recorded_and_a_bounds_value_of_another_type_falls_back_to_the_flat_keys():
    assert recorded_bounds({"bounds": {"latency_s": "fast"}}) == {"latency_s": "fast"}
    assert recorded_bounds({"bounds": [1, 2], "energy_bound": 5}) == {"energy": 5}
