"""Defect 5: NaN or inf inputs used to come back as confident answers (entropy 0.0, class 0).

They are refused with an error naming the tensor and the row: by ``edgesplit infer``, by the
daemon's API (``bad_request``) and by the peer (``bad_request``).
"""
import subprocess
import sys

import numpy as np
import pytest

from edgesplit.runtime.executor.entropy import normalised_entropy
from edgesplit.runtime.transport.client import PeerClient
from support.daemon_process import ROOT, heldout


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "edgesplit.runtime.cli"] + [str(a) for a in args], cwd=str(ROOT),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_infer_refuses_a_non_finite_row_by_its_index(tmp_path, bad):
    images = heldout(4).copy()
    images[2, 0, 5, 5] = bad
    np.save(str(tmp_path / "x.npy"), images)
    done = _cli("infer", "default", tmp_path / "x.npy", "--out", tmp_path / "out.npy")
    err = done.stderr.decode()
    assert done.returncode == 1, (done.returncode, done.stdout, err)
    assert "non-finite" in err and "row 2" in err and "Traceback" not in err, err
    assert not (tmp_path / "out.npy").exists()


def test_entropy_of_non_finite_scores_is_maximal_not_zero():
    for scores in ([[np.nan, 1.0, 2.0]], [[np.inf, 0.0, 0.0]], [[np.nan] * 3] * 2, [[np.nan] + [0.0] * 99]):
        assert np.all(normalised_entropy(np.array(scores, dtype=np.float32)) == 1.0), scores


def test_api_submit_with_nan_is_a_bad_request_naming_the_row(make_daemon):
    daemon = make_daemon().start()
    images = heldout(3).copy()
    images[1, 0, 0, 0] = np.nan
    with daemon.client() as client:
        answer = client.submit(images[1:2])
        assert answer.status == "bad_request" and "non-finite" in answer.message and "row 0" in answer.message
        assert client.submit(images[0:1]).ok
    assert daemon.stop() == 0


def test_peer_answers_nan_tensors_with_bad_request(make_peer, tiny_bundle):
    peer = make_peer(tiny_bundle.root)
    x = np.ones((3, 4), dtype=np.float32)
    x[1, 2] = np.inf
    with PeerClient(peer.endpoint, tiny_bundle.hash) as client:
        outcome = client.offload(0, {"x": x}, 5.0)
        assert outcome.peer_status == "bad_request" and "non-finite" in outcome.message and "row 1" in outcome.message
        assert client.offload(0, {"x": np.ones((1, 4), dtype=np.float32)}, 5.0).ok
    assert peer.stop()[0] == 0


def test_empty_npy_is_a_clear_error_not_a_traceback(tmp_path):
    (tmp_path / "empty.npy").write_bytes(b"")
    done = _cli("infer", "default", tmp_path / "empty.npy", "--out", tmp_path / "out.npy")
    err = done.stderr.decode()
    assert done.returncode == 1 and "empty" in err and "Traceback" not in err, err


@pytest.mark.parametrize("make, says", [
    (lambda d: np.save(str(d / "x.npy"), heldout(4).transpose(0, 2, 3, 1).copy()),
     "x.npy: inputs of shape [4, 28, 28, 1], but bundle mnist-branchy reads 'image' of shape [None, 1, 28, 28]"),
    (lambda d: np.save(str(d / "x.npy"), (heldout(4) * 255).astype(np.uint8)),
     "x.npy: inputs are uint8 but bundle mnist-branchy reads 'image' as float32: apply the model's preprocessing"),
    (lambda d: (np.save(str(d / "x.npy"), heldout(4)), np.save(str(d / "y.npy"), np.array([-1, 2, 3, 4]))),
     "y.npy: labels run from -1 to 4 but the model has 10 classes (0..9)"),
])
def test_run_names_the_file_whose_inputs_or_labels_the_bundle_cannot_take(tmp_path, make, says):
    make(tmp_path)
    labels = ["--labels", tmp_path / "y.npy"] if (tmp_path / "y.npy").exists() else []
    done = _cli("run", "default", "--inputs", tmp_path / "x.npy", *labels)
    err = done.stderr.decode()
    assert done.returncode == 1 and "Traceback" not in err, err
    assert says in err, err
