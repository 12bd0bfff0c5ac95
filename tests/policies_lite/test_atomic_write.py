"""One atomic write for the product: the file and its directory are fsynced, failures leave the old file.

The fsync spy calls the real ``os.fsync`` and records what each descriptor was (``fstat``), so the
test sees the order the helper promises: file synced, renamed into place, directory synced.
"""
import os
import stat

import numpy as np
import pytest

from edgesplit.policies_lite import edgeml_decoder, save_policy
from edgesplit.policies_lite.files import atomic_write
from edgesplit.runtime.daemon.metrics import write_textfile
from support.plite_factory import FEATURES


@pytest.fixture
def fsyncs(monkeypatch):
    """(kind, inode) of every descriptor fsynced, in order; kind is 'dir' or 'file'."""
    seen = []
    real = os.fsync

    def spy(fd):
        info = os.fstat(fd)
        seen.append(("dir" if stat.S_ISDIR(info.st_mode) else "file", info.st_ino))
        return real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    return seen


def _synced_file_then_its_directory(fsyncs, path):
    assert fsyncs[-2:] == [("file", os.stat(str(path)).st_ino), ("dir", os.stat(str(path.parent)).st_ino)], fsyncs


def test_replaces_the_file_and_syncs_it_and_its_directory(tmp_path, fsyncs):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with atomic_write(target, binary=False) as handle:
        handle.write("new\n")
    assert target.read_text() == "new\n"
    assert stat.S_IMODE(os.stat(str(target)).st_mode) == 0o644
    _synced_file_then_its_directory(fsyncs, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_a_failure_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as handle:
            handle.write(b"half")
            raise RuntimeError("disk gone")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]
    with pytest.raises(FileNotFoundError):
        with atomic_write(tmp_path / "missing" / "x.bin") as handle:
            handle.write(b"x")


def test_mode_bits_are_set_whatever_the_umask(tmp_path):
    old = os.umask(0o077)
    try:
        with atomic_write(tmp_path / "shared.prom", mode_bits=0o644) as handle:
            handle.write(b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(str(tmp_path / "shared.prom")).st_mode) == 0o644


def test_metrics_textfile_and_policy_files_use_it(tmp_path, fsyncs):
    prom = tmp_path / "edgesplit.prom"
    write_textfile(str(prom), "edgesplit_up 1.0\n")
    assert prom.read_text() == "edgesplit_up 1.0\n"
    assert stat.S_IMODE(os.stat(str(prom)).st_mode) == 0o644  # node_exporter runs as another user
    _synced_file_then_its_directory(fsyncs, prom)
    policy = tmp_path / "p.npz"
    save_policy(policy, features=FEATURES, layers=[(np.zeros((4, 8)), np.zeros(4))], activations=["identity"],
                decoder=edgeml_decoder(2, 4))
    _synced_file_then_its_directory(fsyncs, policy)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edgesplit.prom", "p.npz"]
