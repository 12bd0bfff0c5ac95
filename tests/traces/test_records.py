"""The JSON text of trace columns: what json.dumps writes, compact, for every kind of value a row holds."""
import dataclasses
import json

import numpy as np
import pytest

from edgesplit.runtime.traces import TraceError
from edgesplit.runtime.traces.records import JsonText, dumps


@dataclasses.dataclass
class Pair:
    left: float
    right: list


PLAIN = ["abc", "é\n\"", 1.5, -0.0, 1e-07, 2.5e-05, 0.1 + 0.2, 10 ** 20, None, True, False, [], {},
         {"main0": 0.00018148199887946248, "exit0": 4.184299905318767e-05}, [9.6e-06, 0.0, 0.0, 1.0],
         {"thresholds": [0.5, 0.25], "cut": 3, "interval": 1, "use_exits": True}, {"x": {"y": [1, {"z": None}]}}]


@pytest.mark.parametrize("value", PLAIN)
def test_plain_values_are_written_as_json_dumps_writes_them(value):
    assert dumps(value, "column") == json.dumps(value, separators=(",", ":"))


def test_numpy_values_dataclasses_and_odd_keys_are_converted():
    assert dumps({"k": np.float64(0.1), "n": np.int64(3), "a": np.arange(3)}, "c") == '{"k":0.1,"n":3,"a":[0,1,2]}'
    assert dumps(np.float32(1.25), "c") == "1.25"
    assert dumps(Pair(1.0, [np.int32(2)]), "c") == '{"left":1.0,"right":[2]}'
    assert dumps({(1, 2): 3, np.int64(4): 5}, "c") == '{"(1, 2)":3,"4":5}'


@pytest.mark.parametrize("value", [float("nan"), [float("inf")], {"s": -float("inf")}])
def test_non_finite_numbers_are_refused_naming_the_column(value):
    with pytest.raises(TraceError, match="segment_times: cannot store as JSON"):
        dumps(value, "segment_times")


def test_text_already_encoded_is_stored_as_it_is():
    text = JsonText(dumps([0.1, 2.0], "state"))
    assert dumps(text, "state") == "[0.1,2.0]" and type(dumps(text, "state")) is str
