"""Strict loading of board_configs/*.toml: every shipped file loads; every mistake names file, key, line."""
import pytest

from edgesplit.runtime.boards.config import (BoardConfigError, board_configs_dir, list_board_configs, load_all_boards,
                                   load_board_config, load_named_board)

SHIPPED = ["jetson_nano", "jetson_nano_cpu", "jetson_orin_nano", "jetson_tx2", "jetson_xavier_nx", "rpi4", "rpi5",
           "x86_cpu", "x86_nvidia"]

GOOD = """\
name = "myboard"
description = "a test board"

[match]
models = ["Test Board"]

[sensors]
enabled = ["gpu", "cpu_freq"]
gpu_sources = ["devfreq"]
rate_hz = 10

[execution]
providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
intra_op_threads = 2
inter_op_threads = 1

[policy]
energy_proxy = "gpu_freq"

[bounds]
latency_ms = 100.0
energy = 1200.0
energy_unit = "MHz"
"""


def write(tmp_path, text, name="myboard"):
    path = tmp_path / (name + ".toml")
    path.write_text(text)
    return str(path)


def test_every_shipped_config_loads():
    assert list_board_configs() == SHIPPED
    boards = load_all_boards()
    assert [b.name for b in boards] == SHIPPED
    tx2 = load_named_board("jetson_tx2")
    assert tx2.policy.energy_proxy == "gpu_freq" and tx2.bounds.energy == 1200.0
    assert tx2.execution.providers[-1] == "CPUExecutionProvider"
    assert tx2.path.startswith(board_configs_dir())


def test_a_good_config_gives_typed_values(tmp_path):
    board = load_board_config(write(tmp_path, GOOD))
    assert board.sensors.rate_hz == 10.0 and isinstance(board.sensors.rate_hz, float)
    assert board.sensors.window_s == 1.0  # default
    assert board.match.models == ("Test Board",)


@pytest.mark.parametrize("old, new, line, words", [
    ("rate_hz = 10", "rate_hz = 10\nrate_hx = 5", 11, ["sensors.rate_hx", "unknown key"]),
    ("intra_op_threads = 2", "intra_op_threads = \"two\"", 14, ["execution.intra_op_threads", "an integer"]),
    ("latency_ms = 100.0", "latency_ms = true", 21, ["bounds.latency_ms", "a number"]),
    ("models = [\"Test Board\"]", "models = \"Test Board\"", 5, ["match.models", "list of strings"]),
    ("[policy]", "[policies]", 17, ["policies", "unknown key"]),
    ("energy_unit = \"MHz\"", "energy_unit = \"W\"", 23, ["bounds.energy_unit", "MHz"]),
    ("gpu_sources = [\"devfreq\"]", "gpu_sources = [\"devfreq\", \"sysfs\"]", 9, ["'sysfs'", "choose from"]),
    ("providers = [\"CUDAExecutionProvider\", \"CPUExecutionProvider\"]", "providers = [\"CUDAExecutionProvider\"]",
     13, ["CPUExecutionProvider"]),
    ("providers = [\"CUDAExecutionProvider\", ", "providers = [\"CudaExecutionProvider\", ", 13,
     ["'CudaExecutionProvider'"]),
    ("energy_proxy = \"gpu_freq\"", "energy_proxy = \"gpu_frequency\"", 18, ["policy.energy_proxy"]),
    ("name = \"myboard\"", "name = \"otherboard\"", 1, ["myboard.toml"]),
    ("rate_hz = 10", "rate_hz = -1", 10, ["sensors.rate_hz", "(0, 1000]"]),
])
def test_mistakes_name_file_key_and_line(tmp_path, old, new, line, words):
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(BoardConfigError) as error:
        load_board_config(path)
    message = str(error.value)
    assert message.startswith("%s:%d:" % (path, line)), message
    for word in words:
        assert word in message, message


EMULATION = """
[emulation]
description = "a test board, emulated"
macs_per_s = 2.5e9
macs_per_s_source = "derived: 2x the measured figure of another board"
busy_power_w = 10.0
busy_power_w_source = "spec: the data sheet's 10 W mode"
idle_power_w = 2.0
idle_power_w_source = "assumption: about 2 W, not measured"
energy_unit = "mJ"
"""


def test_an_emulation_table_gives_typed_figures_and_their_provenance(tmp_path):
    board = load_board_config(write(tmp_path, GOOD + EMULATION))
    assert board.emulation.macs_per_s == 2.5e9 and board.emulation.idle_power_w == 2.0
    assert board.emulation.basis == "derived"  # from the macs_per_s source's first word
    assert load_board_config(write(tmp_path, GOOD)).emulation is None  # optional: such a board is live only


@pytest.mark.parametrize("old, new, line, words", [
    ("macs_per_s = 2.5e9", "macs_per_s = 2.5e9\nmacs_per_sec = 1", 28, ["emulation.macs_per_sec", "unknown key"]),
    ("macs_per_s = 2.5e9", "macs_per_s = \"fast\"", 27, ["emulation.macs_per_s", "a number"]),
    ("macs_per_s = 2.5e9", "macs_per_s = 0", 27, ["emulation.macs_per_s", "positive"]),
    ("idle_power_w = 2.0", "idle_power_w = nan", 31, ["emulation.idle_power_w", "finite"]),
    ("idle_power_w = 2.0", "idle_power_w = 12.0", 31, ["emulation.idle_power_w", "busy_power_w"]),
    ("\"spec: the data", "\"the data", 30, ["emulation.busy_power_w_source", "measured:", "assumption:"]),
    ("energy_unit = \"mJ\"", "energy_unit = \"MHz\"", 33, ["emulation.energy_unit", "mJ", "gpu_freq"]),
])
def test_emulation_mistakes_name_file_key_and_line(tmp_path, old, new, line, words):
    text = GOOD + EMULATION
    assert old in text
    path = write(tmp_path, text.replace(old, new, 1))
    with pytest.raises(BoardConfigError) as error:
        load_board_config(path)
    message = str(error.value)
    assert message.startswith("%s:%d:" % (path, line)), message
    for word in words:
        assert word in message, message


def test_emulation_missing_key_points_at_its_table(tmp_path):
    path = write(tmp_path, GOOD + EMULATION.replace("energy_unit = \"mJ\"\n", ""))
    with pytest.raises(BoardConfigError, match=r"myboard.toml:25: key emulation: missing required key 'energy_unit'"):
        load_board_config(path)


def test_every_shipped_board_is_emulatable_with_the_provenance_of_each_figure():
    for board in load_all_boards():
        e = board.emulation
        assert e is not None, board.name
        assert e.basis in ("measured", "derived", "assumption"), board.name
        for key in ("macs_per_s_source", "busy_power_w_source", "idle_power_w_source"):
            assert getattr(e, key).split(":")[0] in ("measured", "derived", "spec", "assumption"), (board.name, key)
    measured = {b.name for b in load_all_boards() if b.emulation.basis == "measured"}
    assert measured == {"jetson_nano", "jetson_nano_cpu", "rpi4"}  # the boards the Framework Tax data covers


def test_a_variant_config_is_never_detected(tmp_path):
    from edgesplit.runtime.boards.detect import match_model

    boards = load_all_boards()
    nano_cpu = load_named_board("jetson_nano_cpu")
    assert nano_cpu.match.detect is False and nano_cpu.execution.providers == ("CPUExecutionProvider",)
    found = match_model("NVIDIA Jetson Nano Developer Kit", boards)
    assert found is not None and found[0].name == "jetson_nano"
    path = write(tmp_path, GOOD.replace("[match]\n", "[match]\ngeneric = true\ndetect = false\n"))
    with pytest.raises(BoardConfigError, match=r"myboard.toml:6: key match.detect: .*generic"):
        load_board_config(path)


def test_missing_key_points_at_its_table(tmp_path):
    path = write(tmp_path, GOOD.replace("inter_op_threads = 1\n", ""))
    with pytest.raises(BoardConfigError, match=r"myboard.toml:12: key execution: missing required key "
                                               r"'inter_op_threads'"):
        load_board_config(path)


def test_invalid_toml_names_the_file(tmp_path):
    path = write(tmp_path, GOOD.replace("rate_hz = 10", "rate_hz = "))
    with pytest.raises(BoardConfigError, match=r"myboard.toml: not valid TOML: .*line 10"):
        load_board_config(path)


def test_unknown_board_name_lists_the_known_ones():
    with pytest.raises(BoardConfigError, match="known boards: jetson_nano, jetson_nano_cpu, jetson_orin_nano"):
        load_named_board("jetson_agx_thor")


def test_shipped_configs_found_from_the_package():
    from edgesplit import board_configs

    assert board_configs_dir().rstrip("/").endswith("board_configs")
    assert board_configs.__file__.startswith(board_configs_dir())
