"""docs/walkthrough.md, run as written: a user's model.onnx -> add-exits -> profile -> build-policy ->
run on an emulated board over a real bandwidth recording -> peer + serve (with a policy built for this
live board) + submit -> traces -> plot.

Each command is a real subprocess of the installed CLI, in a folder holding the files the page names;
every command line the test runs must appear verbatim on the page, so the page cannot drift from
what works. "The user's model" is a real pretrained classifier: MTCNN's ONet face / not-face network
with the weights shipped in the facenet-pytorch wheel, on the 200 real LFW images of scikit-image's
lfw_subset (tests/support/pretrained_onet.py). Both wheels are downloaded with pip into a temporary
folder (read, never installed); the test skips, saying so, only when PyPI cannot be reached.
"""
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("torch")

from edgesplit.runtime.api.client import ApiClient  # noqa: E402

pytestmark = pytest.mark.workstation

PAGE = Path(__file__).resolve().parents[2] / "docs" / "walkthrough.md"


class Shell:
    def __init__(self, cwd: Path):
        self.cwd = cwd
        self.page = PAGE.read_text()

    def argv(self, line: str):
        assert line in self.page, "docs/walkthrough.md does not show: %s" % line
        words = shlex.split(line)
        assert words[0] == "edgesplit"
        return [sys.executable, "-m", "edgesplit.runtime.cli"] + words[1:]

    def run(self, line: str, **subs) -> str:
        argv = [w.format(**subs) for w in self.argv(line)]
        done = subprocess.run(argv, cwd=str(self.cwd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
        assert done.returncode == 0, "%s\n%s" % (line, done.stderr.decode()[-3000:])
        return done.stdout.decode()

    def start(self, line: str, **subs) -> subprocess.Popen:
        argv = [w.format(**subs) for w in self.argv(line)]
        return subprocess.Popen(argv, cwd=str(self.cwd), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=dict(os.environ, PYTHONUNBUFFERED="1"))


def _json_documents(text: str):
    decoder, documents, at = json.JSONDecoder(), [], 0
    while text[at:].strip():
        at += len(text[at:]) - len(text[at:].lstrip())
        document, at = decoder.raw_decode(text, at)
        documents.append(document)
    return documents


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """(model.onnx, {name: (images, labels)}) for the page's files, from the two wheels."""
    from support.pretrained_onet import PyPIUnreachable, fetch_wheels, lfw_subset, onet_onnx, walkthrough_files

    root = tmp_path_factory.mktemp("pretrained")
    try:
        wheels = fetch_wheels(root / "wheels")
    except PyPIUnreachable as exc:
        pytest.skip("the walkthrough's pretrained model and data come from PyPI, which is unreachable: %s" % exc)
    model = onet_onnx(wheels["facenet-pytorch"], root / "model.onnx")
    images, labels = lfw_subset(wheels["scikit-image"])
    return model, walkthrough_files(images, labels)


def test_the_walkthrough_runs_as_written(pretrained, tmp_path):
    model, files = pretrained
    work = tmp_path
    (work / "model.onnx").write_bytes(model.read_bytes())
    for name, prefix in (("x", ""), ("val", "val_"), ("test", "test_")):
        np.save(work / ("%sx.npy" % prefix), files[name][0])
        np.save(work / ("%sy.npy" % prefix), files[name][1])
    from support.pretrained_onet import PROVENANCE

    (work / "model_source.json").write_text(json.dumps(PROVENANCE, indent=2))
    sh = Shell(work)

    assert "model.onnx" in sh.run("edgesplit cuts model.onnx")
    sh.run("edgesplit add-exits model.onnx --images x.npy --labels y.npy --at 3,6 --model-source model_source.json "
           "--out my.bundle")
    manifest = json.loads((work / "my.bundle" / "manifest.json").read_text())
    assert len([e for e in manifest["exits"] if e["head"]]) == 2
    assert manifest["provenance"]["model_source"] == PROVENANCE
    for record in manifest["provenance"]["exits"]["exits"]:  # held out by add-exits' own split
        assert record["accuracy_test"] >= 0.95

    sh.run("edgesplit profile my.bundle --board x86_cpu --force --repeats 20 --warmup 5")
    profile = json.loads((work / "my.bundle" / "profiles" / "x86_cpu.json").read_text())
    assert profile["energy"]["proxy"] == "cpu_freq" and profile["energy"]["unit"] == "MHz"

    sh.run("edgesplit build-policy --bundle my.bundle --board rpi4 --energy-bound 400 --images val_x.npy "
           "--labels val_y.npy --link norway_car_3 --out policy.npz")
    from edgesplit.policies_lite import load_policy

    provenance = load_policy(work / "policy.npz").provenance
    assert provenance["board"] == "rpi4" and provenance["bundle_sha256"] == manifest["bundle_sha256"]
    sh.run("edgesplit build-policy --bundle my.bundle --measured-profile x86_cpu --images val_x.npy "
           "--labels val_y.npy --link norway_car_3 --out live_policy.npz")
    live = load_policy(work / "live_policy.npz")
    assert live.provenance["energy_unit"] == "MHz" and live.provenance["energy_proxy"] == "cpu_freq"
    # Learned instead of planned, then ranked on a recording it was not trained on.
    sh.run("edgesplit train --algo search --bundle my.bundle --board rpi4 --energy-bound 400 --images val_x.npy "
           "--labels val_y.npy --link-traces norway_car_3 --validation-traces ghent_bus_0001 --generations 4 --seed 0 "
           "--out learned.npz")
    assert load_policy(work / "learned.npz").provenance["bounds"] == {"latency_s": 0.3, "energy": 400.0}
    ranked = sh.run("edgesplit evaluate --bundle my.bundle --board rpi4 --energy-bound 400 --images val_x.npy "
                    "--labels val_y.npy --link ghent_bus_0001 --train-link norway_car_3 --policy learned.npz "
                    "--tasks 200")
    assert "policy" in ranked and "within 1.5 accuracy points" in ranked

    peer = sh.start("edgesplit peer my.bundle --bind tcp://127.0.0.1:* --json")
    try:
        ready = json.loads(peer.stdout.readline().decode())
        endpoint = ready["endpoint"]
        report = json.loads(sh.run("edgesplit run my.bundle --board rpi4 --policy policy.npz --peer {peer} "
                                   "--link norway_car_3 --period-ms 50 --latency-bound-ms 300 --energy-bound 400 "
                                   "--inputs test_x.npy --labels test_y.npy --traces run.db --json", peer=endpoint))
        assert report["tasks"] == report["completed"] == 100
        assert report["accuracy"] > 0.9 and report["policy_id"]

        sockdir = Path(tempfile.mkdtemp(prefix="es-", dir="/tmp"))  # a unix socket path stays short
        config = (work / "edgesplit.toml")
        page_config = re.search(r"```toml\n(.*?)```", sh.page, re.S).group(1)
        config.write_text(page_config.replace("tcp://127.0.0.1:5555", endpoint)
                          .replace("api.sock", str(sockdir / "api.sock")))
        daemon = sh.start("edgesplit serve --config edgesplit.toml")
        try:
            deadline = time.monotonic() + 60
            while not (sockdir / "api.sock").exists() and time.monotonic() < deadline:
                assert daemon.poll() is None, daemon.stderr.read().decode()[-3000:]
                time.sleep(0.1)
            with ApiClient(str(sockdir / "api.sock"), timeout_s=5.0) as client:
                while not client.ping():
                    time.sleep(0.1)
                assert client.status()["policy"]["policy_id"] == live.policy_id
            answers = _json_documents(sh.run(
                "edgesplit submit --config edgesplit.toml --inputs test_x.npy --labels test_y.npy --rows 20 --json"))
            assert len(answers) == 20 and all(a["status"] == "ok" for a in answers)
            assert {a["policy_id"] for a in answers} == {live.policy_id}
        finally:
            _stop(daemon)
    finally:
        _stop(peer)
    summary = sh.run("edgesplit traces summary serve.db")
    assert "tasks" in summary
    sh.run("edgesplit traces export run.db --format parquet --out run_tasks.parquet")
    import pyarrow.parquet as pq

    table = pq.read_table(str(work / "run_tasks.parquet"))
    assert table.num_rows == 100
    sh.run("edgesplit plot run.db --out run.png")
    assert (work / "run.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
