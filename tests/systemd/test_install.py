"""systemd/install.sh against scratch roots: idempotent, board-aware, and --uninstall leaves the root as it was.

Runs the real script as root with --root (useradd/groupadd --prefix edit the scratch root's own
/etc/passwd and /etc/group) and --skip-pip (the venv is created without packages: nothing is
downloaded and the real /opt is never touched).
"""
import hashlib
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "systemd" / "install.sh"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="install.sh creates users and chowns files: needs root"),
    pytest.mark.skipif(shutil.which("useradd") is None or subprocess.run(
        ["useradd", "--help"], stdout=subprocess.PIPE, universal_newlines=True).stdout.find("--prefix") < 0,
        reason="this useradd has no --prefix (shadow < 4.6): cannot install into a scratch root"),
]


def _seed(root: Path, model: str = "", tegra: str = "") -> None:
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (root / "etc" / "group").write_text("root:x:0:\nvideo:x:44:\ni2c:x:998:\ngpio:x:997:\n")
    (root / "etc" / "shadow").write_text("root:*:19000:0:99999:7:::\n")
    (root / "etc" / "gshadow").write_text("root:*::\nvideo:!::\ni2c:!::\ngpio:!::\n")
    os.chmod(str(root / "etc" / "shadow"), 0o640)
    if model:
        (root / "proc" / "device-tree").mkdir(parents=True)
        (root / "proc" / "device-tree" / "model").write_bytes(model.encode() + b"\0")
    if tegra:
        (root / "etc" / "nv_tegra_release").write_text(tegra)


def _tree(root: Path) -> dict:
    """Every path under root: type, mode, owner, and content hash or link target. The shadow tools'
    own backups (etc/passwd- ...) are the system's, not the installer's: left out."""
    found = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if rel.startswith("etc/") and rel.endswith("-") and "/" not in rel[4:]:
            continue
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            what = "link " + os.readlink(str(path))
        elif stat.S_ISDIR(st.st_mode):
            what = "dir"
        else:
            what = hashlib.sha256(path.read_bytes()).hexdigest()
        found[rel] = (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, what)
    return found


def _install(root: Path, *extra: str) -> str:
    proc = subprocess.run(["sh", str(SCRIPT), "--root", str(root), "--skip-pip", "--python", sys.executable] + list(extra),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, timeout=120)
    assert proc.returncode == 0, proc.stdout
    return proc.stdout


def test_raspberry_pi_install_is_idempotent_and_uninstall_restores_the_root(tmp_path):
    root = tmp_path / "root"
    _seed(root, model="Raspberry Pi 4 Model B Rev 1.4")
    before = _tree(root)
    out = _install(root)
    assert "board rpi" in out
    first = _tree(root)
    _install(root)
    assert _tree(root) == first  # a second run changes nothing

    passwd = (root / "etc" / "passwd").read_text()
    assert "edgesplit:x:" in passwd and ":/var/lib/edgesplit:/usr/sbin/nologin" in passwd
    groups = (root / "etc" / "group").read_text().splitlines()
    for name in ("video", "i2c", "gpio"):
        assert any(line.startswith(name + ":") and line.endswith("edgesplit") for line in groups), groups
    gid = next(int(line.split(":")[2]) for line in groups if line.startswith("edgesplit:"))
    units = root / "etc" / "systemd" / "system"
    assert (units / "edgesplit.service.d" / "board.conf").read_text().count("vchiq") == 1
    assert os.readlink(str(units / "multi-user.target.wants" / "edgesplit.service")) == "/etc/systemd/system/edgesplit.service"
    config = root / "etc" / "edgesplit" / "edgesplit.toml"
    assert first["etc/edgesplit/edgesplit.toml"][:3] == (0o640, 0, gid)
    assert (root / "opt" / "edgesplit" / "venv" / "pyvenv.cfg").is_file()
    assert not (units / "edgesplit-peer.service").exists()

    # An edited config is kept by a plain uninstall (it is the user's now) and removed by --purge.
    config.write_text(config.read_text() + "\n# edited\n")
    subprocess.run(["sh", str(SCRIPT), "--root", str(root), "--uninstall"], check=True, stdout=subprocess.PIPE)
    assert config.exists() and not (units / "edgesplit.service").exists()
    subprocess.run(["sh", str(SCRIPT), "--root", str(root), "--uninstall", "--purge"], check=True, stdout=subprocess.PIPE)
    assert _tree(root) == before


def test_jetpack4_gets_the_jetson_devices_and_the_peer_unit_when_asked(tmp_path):
    root = tmp_path / "root"
    _seed(root, model="NVIDIA Jetson Nano Developer Kit", tegra="# R32 (release), REVISION: 7.1, GCID: 1\n")
    before = _tree(root)
    out = _install(root, "--peer")
    assert "board jetson" in out
    units = root / "etc" / "systemd" / "system"
    assert "nvhost-ctrl-gpu" in (units / "edgesplit.service.d" / "board.conf").read_text()
    assert (units / "edgesplit-peer.service").is_file() and (root / "etc" / "edgesplit" / "peer.env").is_file()
    assert (units / "multi-user.target.wants" / "edgesplit-peer.service").is_symlink()
    first = _tree(root)
    _install(root, "--peer")
    assert _tree(root) == first
    subprocess.run(["sh", str(SCRIPT), "--root", str(root), "--uninstall"], check=True, stdout=subprocess.PIPE)
    assert _tree(root) == before


def test_jetpack4_without_an_explicit_python_asks_for_python38(tmp_path):
    root = tmp_path / "root"
    _seed(root, model="NVIDIA Jetson TX2", tegra="# R32 (release), REVISION: 7.1\n")
    env = dict(os.environ, PATH="/usr/bin:/bin:/usr/sbin:/sbin")  # no python3.8 on this PATH
    proc = subprocess.run(["sh", str(SCRIPT), "--root", str(root), "--skip-pip"], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, env=env)
    assert "python python3.8" in proc.stdout
    if shutil.which("python3.8", path=env["PATH"]) is None:
        assert proc.returncode == 1 and "apt install python3.8 python3.8-venv" in proc.stdout
