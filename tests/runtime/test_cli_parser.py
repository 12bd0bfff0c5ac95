"""The command line as a whole: lazy command loading, and options every subcommand shares."""
import os
import re
import subprocess
import sys

import pytest

from edgesplit.runtime import cli

HEAVY = ("numpy", "onnxruntime", "zmq", "torch", "onnx")


def _python(code):
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_importing_the_cli_imports_no_numerical_or_network_library():
    out = _python("import sys, edgesplit.runtime.cli\nprint(sorted(m for m in %r if m in sys.modules))" % (HEAVY,))
    assert out.strip() == "[]"


def test_top_level_help_lists_every_command_without_loading_them():
    code = ("import sys\nfrom edgesplit.runtime.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('LOADED', sorted(m for m in %r if m in sys.modules))" % (HEAVY,))
    out = _python(code)
    assert out.strip().endswith("LOADED []")
    for name in ("board", "demo", "infer", "link", "peer", "profile", "run", "traces", "serve", "submit", "status",
                 "keys", "cuts", "split", "build-default", "export-tflite", "build-policy", "add-exits"):
        assert re.search(r"^    %s(\s|$)" % re.escape(name), out, re.M), name


def _leaf_parsers(parser, path=()):
    subs = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    if not subs:
        yield path, parser
    for action in subs:
        for name, child in action.choices.items():
            yield from _leaf_parsers(child, path + (name,))


def test_every_subcommand_takes_verbose_after_its_name():
    parser = cli.build_parser(everything=True)
    leaves = list(_leaf_parsers(parser))
    assert len(leaves) > 15
    for path, leaf in leaves:
        assert "-v" in leaf._option_string_actions and "--verbose" in leaf._option_string_actions, path


@pytest.mark.parametrize("argv", [
    ["profile", "default", "-v", "--board", "x86_cpu", "--no-save", "--repeats", "1", "--warmup", "0"],
    ["-v", "profile", "default", "--board", "x86_cpu", "--no-save", "--repeats", "1", "--warmup", "0"],
])
def test_verbose_before_or_after_the_command(argv):
    done = subprocess.run([sys.executable, "-m", "edgesplit.runtime.cli"] + argv, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "INFO " in done.stderr
    # each verbose line says when: "2026-11-30 18:45:01,123 INFO edgesplit...."
    info = [line for line in done.stderr.splitlines() if " INFO " in line]
    assert info and all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO ", line) for line in info), info


def test_verbose_under_systemd_leaves_the_time_to_the_journal():
    env = dict(os.environ, INVOCATION_ID="0123456789abcdef")  # what systemd sets for a unit's processes
    done = subprocess.run([sys.executable, "-m", "edgesplit.runtime.cli", "-v", "profile", "default", "--board", "x86_cpu",
                           "--no-save", "--repeats", "1", "--warmup", "0"], capture_output=True, text=True, timeout=120,
                          env=env)
    assert done.returncode == 0, done.stderr
    info = [line for line in done.stderr.splitlines() if "INFO " in line]
    assert info and all(line.startswith("INFO ") for line in info), info


def test_warnings_without_verbose_carry_no_timestamp():
    done = subprocess.run([sys.executable, "-m", "edgesplit.runtime.cli", "profile", "default", "--board", "x86_cpu",
                           "--no-save", "--repeats", "1", "--warmup", "0"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert " INFO " not in done.stderr and not re.search(r"^\d{4}-\d\d-\d\d ", done.stderr, re.M), done.stderr


def test_unknown_command_is_an_error_listing_the_commands():
    done = subprocess.run([sys.executable, "-m", "edgesplit.runtime.cli", "rnu"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and "invalid choice: 'rnu'" in done.stderr and "run" in done.stderr


def test_every_shared_number_flag_is_a_number_flag_wherever_a_command_has_it():
    # number_flags.py finds a flag by its name: a command giving the name another meaning would be checked wrongly.
    from edgesplit.runtime.commands.number_flags import DEADLINE_FLAG, SHARED_RANGES

    seen = set()
    for path, leaf in _leaf_parsers(cli.build_parser(everything=True)):
        for flag in list(SHARED_RANGES) + [DEADLINE_FLAG]:
            action = leaf._option_string_actions.get(flag)
            if action is None:
                continue
            seen.add(path[0])
            assert action.type in (int, float), (path, flag)
            assert action.dest == flag[2:].replace("-", "_"), (path, flag)
    assert {"run", "demo", "submit", "link", "train", "evaluate", "build-policy"} <= seen


# One case per command that shares the flags: the same check refuses them all, by flag name, before anything runs.
SHARED_FLAG_CASES = [
    (["demo", "--limit", "-1"], "--limit must be a whole number >= 1, got -1"),
    (["submit", "--inputs", "x.npy", "--rows", "-1"], "--rows must be a whole number >= 1, got -1"),
    (["submit", "--inputs", "x.npy", "--timeout", "-1"], "--timeout must be a positive number (finite, > 0), got -1"),
    (["status", "--timeout", "0"], "--timeout must be a positive number (finite, > 0), got 0"),
    (["train", "--algo", "ddpg", "--board", "jetson_nano_cpu", "--link-traces", "norway_car_3", "--seed", "0",
      "--out", "p.npz", "--rtt-ms", "nan"], "--rtt-ms must be zero or a positive number (finite, >= 0), got nan"),
    (["train", "--algo", "ddpg", "--board", "jetson_nano_cpu", "--link-traces", "norway_car_3", "--seed", "0",
      "--out", "p.npz", "--period-ms", "0"], "--period-ms must be a positive number (finite, > 0), got 0.0"),
    (["train", "--algo", "ddpg", "--board", "jetson_nano_cpu", "--link-traces", "norway_car_3", "--seed", "0",
      "--out", "p.npz", "--energy-bound", "inf"], "got inf; for no energy bound leave --energy-bound out"),
    (["evaluate", "--link", "norway_car_3", "--policy", "p.npz", "--energy-bound", "inf"],
     "got inf; for no energy bound give --no-energy-bound"),
    (["evaluate", "--link", "norway_car_3", "--policy", "p.npz", "--speedup", "inf"],
     "--speedup must be a positive number (finite, > 0), got inf"),
    (["build-policy", "--out", "p.npz", "--rtt-ms", "nan"], "--rtt-ms must be zero or a positive number"),
    (["build-policy", "--out", "p.npz", "--link-scale", "0"], "--link-scale must be a positive number"),
    (["build-policy", "--out", "p.npz", "--limit", "-1"], "--limit must be a whole number >= 1, got -1"),
    (["build-policy", "--out", "p.npz", "--energy-bound", "inf"], "for no energy bound give --no-energy-bound"),
]


@pytest.mark.parametrize("argv, message", SHARED_FLAG_CASES, ids=[" ".join(c[0][:1] + c[0][-2:])
                                                                  for c in SHARED_FLAG_CASES])
def test_shared_number_flags_are_refused_the_same_way_by_every_command(argv, message, tmp_path, monkeypatch,
                                                                       capsys):
    monkeypatch.chdir(tmp_path)  # nothing may be written, and relative files (x.npy, p.npz) resolve here
    assert cli.main(argv) == 1
    out, err = capsys.readouterr()
    assert err.strip().splitlines() == [err.strip()] and "edgesplit %s: error: " % argv[0] in err, err
    assert message in err, err
    assert list(tmp_path.iterdir()) == []


def test_the_command_list_names_every_algorithm_train_takes():
    from edgesplit.codegen.commands import train

    algo = next(a for _, leaf in _leaf_parsers(cli.build_parser(["train"])) if leaf.prog.endswith(" train")
                for a in leaf._actions if "--algo" in a.option_strings)
    assert algo.choices and all(choice.lower() in train.help.lower() for choice in algo.choices), train.help
