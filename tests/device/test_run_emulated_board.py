"""``run --board NAME`` emulates any shipped board config, from its [emulation] table, with a real peer."""
import json
import subprocess

import pytest

from edgesplit.runtime.boards.config import load_named_board


def test_run_on_an_emulated_pi5_paces_to_its_board_config(peers, heldout_files, free_port, edgesplit):
    x, y = heldout_files
    peers(free_port)
    done = subprocess.run(edgesplit + ["run", "default", "--peer", "tcp://127.0.0.1:%d" % free_port, "--inputs", x,
                                       "--labels", y, "--cut", "2", "--limit", "20", "--board", "rpi5",
                                       "--workload-scale", "50", "--speedup", "4", "--json"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["tasks"] == report["completed"] == 20
    emulation = report["emulation"]
    board = load_named_board("rpi5")
    assert emulation["emulated"] is True and emulation["label"] == "rpi5 (emulated)"
    assert emulation["board"]["macs_per_s"] == board.emulation.macs_per_s
    assert emulation["board"]["basis"] == "derived"
    assert emulation["board"]["provenance"]["macs_per_s"] == board.emulation.macs_per_s_source
    assert emulation["board"]["board_config"] == board.path


def test_run_names_the_known_boards_for_an_unknown_one(heldout_files, edgesplit):
    x, _ = heldout_files
    done = subprocess.run(edgesplit + ["run", "default", "--inputs", x, "--limit", "2", "--board", "rpi6"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "no board config 'rpi6'" in done.stderr and "rpi5" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("command", [["run", "-h"], ["board", "list", "-h"]])
def test_help_says_board_means_a_board_config(edgesplit, command):
    done = subprocess.run(edgesplit + command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert "board list" in done.stdout


def test_board_list_says_how_each_board_is_emulated(edgesplit):
    done = subprocess.run(edgesplit + ["board", "list", "--json"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    boards = {b["name"]: b for b in json.loads(done.stdout)}
    assert boards["rpi4"]["emulation"]["basis"] == "measured"
    assert boards["rpi5"]["emulation"]["basis"] == "derived"
    assert boards["x86_cpu"]["emulation"]["basis"] == "assumption"
    table = subprocess.run(edgesplit + ["board", "list"], capture_output=True, text=True, timeout=60).stdout
    assert "emulated" in table and "measured" in table and "derived" in table


def test_run_says_which_policy_decided_and_shows_the_energy_bound_it_was_held_to(heldout_files, edgesplit):
    x, _ = heldout_files
    done = subprocess.run(edgesplit + ["run", "default", "--inputs", str(x), "--limit", "5", "--policy", "demo",
                                       "--board", "jetson_nano_cpu", "--workload-scale", "112", "--speedup", "20",
                                       "--energy-bound", "900"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "strategy: adaptive from " in done.stdout and "demo_policy.npz" in done.stdout
    header = next(line for line in done.stdout.splitlines() if line.startswith("SR "))
    assert "SR energy" in header
    static = subprocess.run(edgesplit + ["run", "default", "--inputs", str(x), "--limit", "5"], capture_output=True,
                            text=True, timeout=120)
    assert static.returncode == 0, static.stderr
    assert "strategy: static cut 3" in static.stdout
    assert "SR energy" not in static.stdout  # no --energy-bound: no energy bound to meet
