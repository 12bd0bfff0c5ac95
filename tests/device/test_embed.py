"""The in-process API (``edgesplit.runtime.embed.Runtime``) against a real peer process."""
import gc
import json
import re
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from edgesplit.runtime.bundle.store import load_bundle
from edgesplit.runtime.default_bundle import default_bundle_path, load_heldout
from edgesplit.runtime.embed import Inference, Runtime
from edgesplit.runtime.errors import EdgesplitError, InputError
from edgesplit.runtime.executor.executor import Executor

from support.waiting import wait_until

DOC = Path(__file__).resolve().parents[2] / "docs" / "embedding.md"


@pytest.fixture(scope="module")
def heldout():
    images, labels = load_heldout()
    return images[:30], labels[:30]


def test_local_inference_matches_the_executor(heldout):
    images, labels = heldout
    executor = Executor(load_bundle(default_bundle_path()))
    with Runtime("default", board=None) as runtime:
        answers = [runtime.infer(image) for image in images]
        batched = runtime.infer(images[:1])
    for image, answer in zip(images, answers):
        direct = executor.run(image[np.newaxis])
        assert isinstance(answer, Inference) and answer.cut is None and not answer.fallback
        assert answer.exit == direct.exit_id and np.array_equal(answer.scores, direct.output)
        assert answer.result == int(np.argmax(direct.output)) and answer.latency_s > 0
    assert batched.result == answers[0].result
    assert np.mean([a.result == y for a, y in zip(answers, labels)]) > 0.8


def test_offload_to_a_real_peer_logs_traces_then_falls_back_when_it_dies(peers, free_port, heldout, tmp_path):
    images, labels = heldout
    peer = peers(free_port)
    db = tmp_path / "app.db"
    with Runtime("default", peer="tcp://127.0.0.1:%d" % free_port, cut=0, board=None, traces=str(db),
                 latency_bound_ms=500) as runtime:
        assert runtime.peer_alive
        offloaded = [runtime.infer(image, label=int(y)) for image, y in zip(images[:10], labels[:10])]
        peer.stop(signal.SIGKILL)
        after = [runtime.infer(image, deadline_ms=200) for image in images[10:20]]
        run_id = runtime.run_id
    assert all(a.cut == 0 and not a.fallback and a.bytes_sent > 0 for a in offloaded)
    assert all(a.fallback and a.cut is None and a.planned_cut == 0 and a.fallback_reason for a in after)
    local = Executor(load_bundle(default_bundle_path()))
    assert [a.result for a in after] == [int(np.argmax(local.run(x[np.newaxis]).output)) for x in images[10:20]]
    with sqlite3.connect(str(db)) as conn:
        rows = conn.execute("SELECT task_id, cut, fallback, label FROM tasks WHERE run_id = ? ORDER BY task_id",
                            (run_id,)).fetchall()
        config = json.loads(conn.execute("SELECT config FROM runs WHERE run_id = ?", (run_id,)).fetchone()[0])
        steps = conn.execute("SELECT count(*) FROM transitions WHERE run_id = ?", (run_id,)).fetchone()[0]
    assert [r[0] for r in rows] == list(range(20)) and [r[2] for r in rows] == [0] * 10 + [1] * 10
    assert rows[3][3] == int(labels[3]) and config["command"] == "embed" and steps > 0


def test_bad_inputs_and_a_closed_runtime_are_clear_errors(heldout):
    images, _ = heldout
    runtime = Runtime("default", board=None)
    with pytest.raises(InputError, match="one sample, got a batch of 2"):
        runtime.infer(images[:2])
    with pytest.raises(InputError, match="dtype float64"):
        runtime.infer(images[0].astype(np.float64))
    with pytest.raises(InputError, match="has no input 'pixels'"):
        runtime.infer({"pixels": images[0]})
    runtime.close()
    runtime.close()  # idempotent
    with pytest.raises(EdgesplitError, match="closed"):
        runtime.infer(images[0])
    with pytest.raises(InputError, match="either policy= or cut="):
        Runtime("default", board=None, policy="p.npz", cut=0)


def test_the_documented_example_runs(peers, free_port, tmp_path):
    peers(free_port)
    code = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    code = code.replace("tcp://127.0.0.1:5555", "tcp://127.0.0.1:%d" % free_port)
    done = subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 21 and all("on the peer (cut 0)" in line for line in lines[:20])
    assert lines[-1].startswith("peer alive: True run: ") and (tmp_path / "app-traces.db").exists()


def test_a_frozen_policy_drives_the_action_and_a_unit_mismatch_is_refused(heldout):
    from edgesplit.runtime.default_bundle import DEMO_POLICY_FILE

    images, _ = heldout
    with Runtime("default", policy=str(DEMO_POLICY_FILE), board=None) as runtime:
        answers = [runtime.infer(image) for image in images[:5]]
        info = runtime.describe()
    with Runtime("default", policy="demo", board=None) as runtime:  # the shipped policy by name, as the CLI takes it
        assert runtime.describe()["policy_id"] == info["policy_id"]
    assert info["strategy"] == "adaptive" and not info["policy_id"].startswith("static")
    assert all(a.cut is None and not a.fallback for a in answers)  # no peer: the policy's cut runs here
    # The demo policy was built for the emulated board's mJ; rpi4's energy proxy is its CPU clock in MHz.
    with pytest.raises(EdgesplitError, match=r"trained for the EMULATED board jetson_nano_cpu \(energy in mJ.*"
                                             r"board rpi4.*\[emulation\] board = .jetson_nano_cpu."):
        Runtime("default", policy=str(DEMO_POLICY_FILE), board="rpi4")


def test_a_runtime_dropped_without_close_stops_probing_its_peer(peers, free_port):
    peers(free_port)
    runtime = Runtime("default", peer="tcp://127.0.0.1:%d" % free_port, cut=0, board=None)
    assert runtime.peer_alive
    assert [t for t in threading.enumerate() if t.name == "edgesplit-probe"]
    del runtime
    gc.collect()
    assert wait_until(lambda: not [t for t in threading.enumerate() if t.name == "edgesplit-probe"], 5.0)
