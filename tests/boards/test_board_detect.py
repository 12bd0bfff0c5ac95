"""Board detection on every fake board tree, the fallbacks, and the `edgesplit board` command."""
import json
import os
import subprocess
import sys

import pytest

from support import fake_boards
from support.fake_nvml import FakeNvml
from edgesplit.runtime.boards.config import load_all_boards
from edgesplit.runtime.boards.detect import detect_board
from edgesplit.runtime.cli import main
from edgesplit.runtime.sensors.nvml import NvmlSession
from edgesplit.runtime.sensors.sysroot import SysRoot


def no_nvml():
    return NvmlSession(module=FakeNvml(library=False))


@pytest.mark.parametrize("name", fake_boards.board_names())
def test_every_board_tree_is_detected(tmp_path, name):
    root = fake_boards.build(name, tmp_path)
    found = detect_board(SysRoot(str(root)), load_all_boards(), no_nvml())
    assert found.board == fake_boards.expected(name)["board"], found.reason
    assert found.fallback == name.startswith("x86")


def test_tx2_is_recognised_by_its_l4t_codename(tmp_path):
    found = detect_board(SysRoot(str(fake_boards.build("jetson_tx2", tmp_path))), load_all_boards(), no_nvml())
    assert (found.model, found.matched, found.model_source) == ("quill", "quill", "/proc/device-tree/model")


def test_unknown_model_falls_back_with_the_reason(tmp_path):
    fake_boards.model(tmp_path, "Pine64 RockPro64 v2.1")
    found = detect_board(SysRoot(str(tmp_path)), load_all_boards(), no_nvml())
    assert found.board == "x86_cpu" and found.fallback
    assert "'Pine64 RockPro64 v2.1' matches no board config" in found.reason
    assert "libnvidia-ml.so.1 not found" in found.reason


def test_working_nvml_means_x86_nvidia(tmp_path):
    found = detect_board(SysRoot(str(tmp_path)), load_all_boards(), NvmlSession(module=FakeNvml()))
    assert found.board == "x86_nvidia" and "NVML opened GPU 0" in found.reason


def test_cli_detect_and_show_on_a_fake_orin(tmp_path, capsys):
    root = str(fake_boards.build("jetson_orin_nano", tmp_path))
    assert main(["board", "detect", "--json", "--sysroot", root]) == 0
    assert json.loads(capsys.readouterr().out)["board"] == "jetson_orin_nano"
    assert main(["board", "show", "--json", "--sysroot", root]) == 0
    shown = json.loads(capsys.readouterr().out)
    readings = {r["name"]: r for r in shown["readings"]}
    assert shown["config"]["policy"]["energy_proxy"] == "power_total"
    assert readings["power_total"]["value"] == pytest.approx(5064 * 1228 / 1e6)
    assert readings["gpu_freq"]["source"] == "/sys/class/devfreq/17000000.gpu/cur_freq"
    assert main(["board", "show", "--sysroot", root, "--board", "rpi4"]) == 0
    text = capsys.readouterr().out
    assert "energy proxy: cpu_freq" in text and "throttled" in text


def test_cli_validate_refuses_a_typo(tmp_path, capsys):
    source = os.path.join(os.path.dirname(load_all_boards()[0].path), "rpi4.toml")
    bad = tmp_path / "rpi4.toml"
    bad.write_text(open(source).read().replace("window_s", "windows_s"))
    assert main(["board", "validate", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "rpi4.toml:" in err and "sensors.windows_s" in err and "unknown key" in err
    assert main(["board", "validate"]) == 0


def test_board_show_on_this_host_in_a_real_process():
    """On the real root: whatever is present reads, everything else says why not."""
    done = subprocess.run([sys.executable, "-m", "edgesplit.runtime.cli", "board", "show", "--json", "--all-sensors"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120,
                          env=dict(os.environ, EDGESPLIT_SYSROOT="/"))
    assert done.returncode == 0, done.stderr.decode()
    readings = json.loads(done.stdout.decode())["readings"]
    assert readings
    for reading in readings:
        assert reading["available"] == (reading["value"] is not None)
        assert reading["available"] or reading["reason"]
    assert any(r["name"] == "mem_total" and r["available"] for r in readings)
