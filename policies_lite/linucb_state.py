"""Saving and restoring a LinUCB learner's state so it survives a restart or a power cut.

The file is one JSON document: the config, the estimator arrays (float64 written with Python's
round-tripping ``repr``, so a restore is bit-exact), the counts and a sha256 of all of it. ``save``
writes a temporary sibling, fsyncs it, renames it over the old file and fsyncs the directory, so the
path holds either the previous state or the new one, never a mix. ``load`` refuses anything that is
not exactly such a document: bad JSON, a wrong checksum, wrong shapes, non-finite numbers, or a
covariance that is not the inverse of the precision, each with a message that names the file.
"""
import hashlib
import json
from pathlib import Path
from typing import Any, Dict, Mapping, Union

import numpy as np

from edgesplit.policies_lite.errors import PolicyError
from edgesplit.policies_lite.files import atomic_write
from edgesplit.policies_lite.linucb import LearnerState, LinUCBConfig

FORMAT = "edgesplit.linucb-state"
VERSION = 1
PathLike = Union[str, Path]

_CONFIG_FIELDS = ("dim", "alpha", "delta", "lambda_eta", "lambda_v_scale", "lambda_v_power", "features")
# How far C_e @ P may stray from I: Sherman-Morrison drifts ~1e-13 over thousands of updates; a flipped
# digit or a mismatched pair of matrices is far above this.
_INVERSE_TOLERANCE = 1e-6


def _canonical(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False).encode("utf-8")


def state_to_document(state: LearnerState) -> Dict[str, Any]:
    config = state.config
    body = {
        "format": FORMAT, "version": VERSION,
        "config": {"dim": config.dim, "alpha": config.alpha, "delta": config.delta,
                   "lambda_eta": config.lambda_eta, "lambda_v_scale": config.lambda_v_scale,
                   "lambda_v_power": config.lambda_v_power, "features": list(config.features)},
        "n_feedback": state.n_feedback,
        "precision": state.precision.tolist(), "b": state.b.tolist(), "covariance": state.covariance.tolist(),
        "chosen": dict(state.chosen), "rated": dict(state.rated),
    }
    body["sha256"] = hashlib.sha256(_canonical(body)).hexdigest()
    return body


def save_state(path: PathLike, state: LearnerState) -> None:
    """Write ``state`` to ``path`` atomically and durably (tmp + fsync + rename + directory fsync)."""
    with atomic_write(path) as handle:
        handle.write(_canonical(state_to_document(state)))


def load_state(path: PathLike) -> LearnerState:
    """Read a state written by ``save_state``; any damage is a PolicyError naming the file and field."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise PolicyError("%s: no such learner state file" % path) from None
    except OSError as exc:
        raise PolicyError("%s: cannot read learner state (%s)" % (path, exc)) from None
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise PolicyError("%s: learner state is not valid JSON (%s): the file is damaged; delete it to start "
                          "learning afresh or restore a backup" % (path, exc)) from None
    try:
        return document_to_state(document)
    except PolicyError as exc:
        raise PolicyError("%s: %s" % (path, exc)) from None


def document_to_state(document: Any) -> LearnerState:
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise PolicyError("not a learner state (expected a JSON object with format %r)" % FORMAT)
    if document.get("version") != VERSION:
        raise PolicyError("learner state version %r; this build reads version %d" % (document.get("version"), VERSION))
    expected = set(("format", "version", "config", "n_feedback", "precision", "b", "covariance", "chosen", "rated",
                    "sha256"))
    if set(document) != expected:
        raise PolicyError("learner state keys: missing %s, unknown %s" % (sorted(expected - set(document)),
                                                                         sorted(set(document) - expected)))
    body = {k: v for k, v in document.items() if k != "sha256"}
    if hashlib.sha256(_canonical(body)).hexdigest() != document["sha256"]:
        raise PolicyError("learner state checksum mismatch: the file was changed or damaged after it was saved; "
                          "delete it to start learning afresh")
    config = _config(document["config"])
    d = config.dim
    precision = _matrix(document["precision"], "precision", (d, d))
    covariance = _matrix(document["covariance"], "covariance", (d, d))
    b = _matrix(document["b"], "b", (d,))
    n_feedback = document["n_feedback"]
    if not isinstance(n_feedback, int) or isinstance(n_feedback, bool) or n_feedback < 0:
        raise PolicyError("n_feedback: expected an integer >= 0, got %r" % (n_feedback,))
    if np.abs(covariance @ precision - np.eye(d)).max() > _INVERSE_TOLERANCE:
        raise PolicyError("covariance is not the inverse of precision: inconsistent state")
    return LearnerState(config, precision, b, covariance, n_feedback, _counts(document["chosen"], "chosen"),
                        _counts(document["rated"], "rated"))


def _config(raw: Any) -> LinUCBConfig:
    if not isinstance(raw, dict) or set(raw) != set(_CONFIG_FIELDS):
        raise PolicyError("config: expected the keys %s, got %r" % (", ".join(_CONFIG_FIELDS), raw))
    features = raw["features"]
    if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
        raise PolicyError("config.features: expected a list of names, got %r" % (features,))
    return LinUCBConfig(**dict(raw, features=tuple(features)))


def _matrix(raw: Any, name: str, shape) -> np.ndarray:
    try:
        arr = np.array(raw, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise PolicyError("%s: not an array of numbers (%s)" % (name, exc)) from None
    if arr.shape != shape:
        raise PolicyError("%s: shape %s, expected %s" % (name, arr.shape, shape))
    if not np.isfinite(arr).all():
        raise PolicyError("%s: holds non-finite values" % name)
    return arr


def _counts(raw: Any, name: str) -> Dict[str, int]:
    if not isinstance(raw, dict) or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                            for v in raw.values()):
        raise PolicyError("%s: expected an object of arm label -> count >= 0, got %r" % (name, raw))
    return dict(raw)
