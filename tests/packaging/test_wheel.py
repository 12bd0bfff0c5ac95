"""The wheel users install: one top-level package, edgesplit, with every file of the product in it."""
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("runtime", "codegen", "policies_lite", "board_configs")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(ROOT)],
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr
    (path,) = out.glob("edgesplit-*-py3-none-any.whl")
    with zipfile.ZipFile(str(path)) as archive:
        yield archive


def _product_files():
    listed = subprocess.run(["git", "ls-files", "--"] + list(FOLDERS), cwd=str(ROOT), capture_output=True,
                            text=True, check=True).stdout.split()
    if not listed:  # not a git checkout (an sdist): the folders as they are
        listed = [str(p.relative_to(ROOT)) for folder in FOLDERS for p in (ROOT / folder).rglob("*") if p.is_file()]
    return {name for name in listed if "__pycache__" not in name}


def test_one_top_level_package(wheel):
    tops = {name.split("/")[0] for name in wheel.namelist()}
    dist_info = {t for t in tops if t.endswith(".dist-info")}
    assert tops - dist_info == {"edgesplit"}
    assert "edgesplit/__init__.py" not in wheel.namelist()  # an implicit namespace package


def test_every_product_file_is_in_the_wheel(wheel):
    names = set(wheel.namelist())
    missing = sorted(f for f in _product_files() if "edgesplit/" + f not in names)
    assert not missing, "not packaged (add them to [tool.setuptools.package-data]): %s" % missing


def test_the_console_script_and_workstation_commands_point_into_the_package(wheel):
    (entry_points,) = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    text = wheel.read(entry_points).decode()
    assert "edgesplit = edgesplit.runtime.cli:main" in text
    commands = text.split("[edgesplit.commands]")[1].split("[")[0]
    targets = [line.split("=")[1].strip() for line in commands.strip().splitlines()]
    assert targets and all(t.startswith("edgesplit.codegen.") for t in targets), targets
