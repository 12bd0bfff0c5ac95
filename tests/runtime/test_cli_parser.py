"""The command line as a whole: lazy command loading, and options every subcommand shares."""
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


def test_unknown_command_is_an_error_listing_the_commands():
    done = subprocess.run([sys.executable, "-m", "edgesplit.runtime.cli", "rnu"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and "invalid choice: 'rnu'" in done.stderr and "run" in done.stderr
