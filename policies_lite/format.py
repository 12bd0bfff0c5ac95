"""The frozen-policy file format: one ``.npz`` with weight arrays and a JSON ``meta`` string.

Arrays: ``W0, b0, W1, b1, ...`` with ``W<i>`` shaped ``(layer_sizes[i+1], layer_sizes[i])`` (the
torch ``Linear.weight`` layout) and ``b<i>`` shaped ``(layer_sizes[i+1],)``; float32 or float64, all
finite. ``meta`` is a 0-d unicode array holding one JSON object::

    {"format_version": 1,
     "kind": "linear" | "mlp",
     "features": ["latency_mean_s", ...],            # input order; len == layer_sizes[0]
     "normalisation": {"mean": [...], "std": [...]},  # x_norm = (x - mean) / std, std > 0
     "layer_sizes": [8, 64, 64, 5],
     "activations": ["tanh", "tanh", "identity"],     # one per layer
     "decoder": {"type": "edgeml", "n_exits": 3, "n_cuts": 4, "max_interval": 5,
                 "thresholds": "sigmoid" | "clip", "scale": "index" | "unit"}
              | {"type": "task_choice", "choices": [[exit, cut_or_null], ...]},
     "provenance": {"traces": [...], "algorithm": "...", "date": "ISO 8601",
                    "policy_id": "<sha256 of the content>", ...free-form extras}}

This module only checks a parsed ``meta`` dict and the arrays against it; reading and writing the
file is in ``edgesplit.policies_lite.io``.
"""
import math
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from edgesplit.policies_lite.errors import PolicyError

FORMAT_VERSION = 1
META_KEY = "meta"
KINDS = ("linear", "mlp")
ACTIVATIONS = ("tanh", "relu", "identity", "sigmoid")
DECODERS = ("edgeml", "task_choice")
THRESHOLD_MODES = ("sigmoid", "clip")
SCALE_MODES = ("index", "unit")
DEFAULT_MAX_INTERVAL = 5
TOP_LEVEL_KEYS = ("format_version", "kind", "features", "normalisation", "layer_sizes", "activations",
                  "decoder", "provenance")
PROVENANCE_REQUIRED = ("traces", "algorithm", "date", "policy_id")


@dataclass(frozen=True)
class EdgeMLDecoderSpec:
    """Outputs ``[threshold logits x n_exits, cut, interval]`` -> EdgeMLAction."""

    n_exits: int
    n_cuts: int
    max_interval: int
    thresholds: str
    scale: str

    @property
    def n_outputs(self) -> int:
        return self.n_exits + 2

    def to_meta(self) -> Dict[str, Any]:
        return {"type": "edgeml", "n_exits": self.n_exits, "n_cuts": self.n_cuts,
                "max_interval": self.max_interval, "thresholds": self.thresholds, "scale": self.scale}


@dataclass(frozen=True)
class TaskChoiceDecoderSpec:
    """One output per enumerated (exit, cut) pair; the decision is the argmax. cut None = no offload."""

    choices: Tuple[Tuple[int, Optional[int]], ...]

    @property
    def n_outputs(self) -> int:
        return len(self.choices)

    def to_meta(self) -> Dict[str, Any]:
        return {"type": "task_choice", "choices": [list(c) for c in self.choices]}


@dataclass(frozen=True)
class PolicySpec:
    """A validated ``meta``: everything about a policy except its weights."""

    kind: str
    features: Tuple[str, ...]
    mean: Tuple[float, ...]
    std: Tuple[float, ...]
    layer_sizes: Tuple[int, ...]
    activations: Tuple[str, ...]
    decoder: Any  # EdgeMLDecoderSpec | TaskChoiceDecoderSpec
    provenance: Dict[str, Any]
    format_version: int = FORMAT_VERSION

    @property
    def policy_id(self) -> str:
        return self.provenance["policy_id"]

    def array_names(self) -> List[str]:
        names = []
        for i in range(len(self.layer_sizes) - 1):
            names += ["W%d" % i, "b%d" % i]
        return names


# ---------------------------------------------------------------- field checks


def _fail(field: str, problem: str) -> PolicyError:
    return PolicyError("meta.%s: %s" % (field, problem))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int(value: Any, field: str, minimum: int) -> int:
    if not _is_int(value):
        raise _fail(field, "expected an integer, got %r" % (value,))
    if value < minimum:
        raise _fail(field, "must be >= %d, got %d" % (minimum, value))
    return value


def _choice(value: Any, field: str, allowed: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise _fail(field, "unknown value %r: expected one of %s" % (value, ", ".join(allowed)))
    return value


def _list(value: Any, field: str) -> list:
    if not isinstance(value, list):
        raise _fail(field, "expected a list, got %s" % type(value).__name__)
    return value


def _dict(value: Any, field: str) -> dict:
    if not isinstance(value, dict):
        raise _fail(field, "expected an object, got %s" % type(value).__name__)
    return value


def _require(data: Mapping[str, Any], key: str, field: str) -> Any:
    if key not in data:
        raise _fail(field, "missing key %r" % key)
    return data[key]


def _finite_floats(value: Any, field: str, length: int) -> Tuple[float, ...]:
    items = _list(value, field)
    if len(items) != length:
        raise _fail(field, "expected %d numbers (one per feature), got %d" % (length, len(items)))
    out = []
    for i, item in enumerate(items):
        if isinstance(item, bool) or not isinstance(item, (int, float)) or not math.isfinite(item):
            raise _fail("%s[%d]" % (field, i), "expected a finite number, got %r" % (item,))
        out.append(float(item))
    return tuple(out)


def _features(value: Any) -> Tuple[str, ...]:
    names = _list(value, "features")
    if not names:
        raise _fail("features", "empty: a policy needs at least one input feature")
    for i, name in enumerate(names):
        if not isinstance(name, str) or not name:
            raise _fail("features[%d]" % i, "expected a non-empty string, got %r" % (name,))
    seen = set()
    for name in names:
        if name in seen:
            raise _fail("features", "feature %r is listed twice" % name)
        seen.add(name)
    return tuple(names)


def _decoder(value: Any) -> Any:
    data = _dict(value, "decoder")
    kind = _choice(_require(data, "type", "decoder"), "decoder.type", DECODERS)
    if kind == "edgeml":
        _no_unknown_keys(data, ("type", "n_exits", "n_cuts", "max_interval", "thresholds", "scale"), "decoder")
        return EdgeMLDecoderSpec(
            n_exits=_int(_require(data, "n_exits", "decoder"), "decoder.n_exits", 0),  # 0: a cut-only bundle
            n_cuts=_int(_require(data, "n_cuts", "decoder"), "decoder.n_cuts", 1),
            max_interval=_int(data.get("max_interval", DEFAULT_MAX_INTERVAL), "decoder.max_interval", 1),
            thresholds=_choice(data.get("thresholds", "sigmoid"), "decoder.thresholds", THRESHOLD_MODES),
            scale=_choice(data.get("scale", "index"), "decoder.scale", SCALE_MODES))
    _no_unknown_keys(data, ("type", "choices"), "decoder")
    items = _list(_require(data, "choices", "decoder"), "decoder.choices")
    if not items:
        raise _fail("decoder.choices", "empty: list the (exit, cut) pairs the policy chooses among")
    choices = []
    for i, item in enumerate(items):
        field = "decoder.choices[%d]" % i
        if not isinstance(item, list) or len(item) != 2:
            raise _fail(field, "expected [exit, cut] (cut may be null for no offload), got %r" % (item,))
        exit_id = _int(item[0], field + "[0]", 0)
        cut = None if item[1] is None else _int(item[1], field + "[1]", 0)
        choices.append((exit_id, cut))
    if len(set(choices)) != len(choices):
        raise _fail("decoder.choices", "a pair is listed twice")
    return TaskChoiceDecoderSpec(tuple(choices))


def _provenance(value: Any) -> Dict[str, Any]:
    data = _dict(value, "provenance")
    for key in PROVENANCE_REQUIRED:
        _require(data, key, "provenance")
    traces = _list(data["traces"], "provenance.traces")
    for i, item in enumerate(traces):
        if not isinstance(item, str):
            raise _fail("provenance.traces[%d]" % i, "expected a string, got %r" % (item,))
    for key in ("algorithm", "date", "policy_id"):
        if not isinstance(data[key], str) or not data[key]:
            raise _fail("provenance." + key, "expected a non-empty string, got %r" % (data[key],))
    return dict(data)


def _no_unknown_keys(data: Mapping[str, Any], known: Sequence[str], field: str) -> None:
    unknown = sorted(k for k in data if k not in known)
    if unknown:
        where = field + "." if field else ""
        raise PolicyError("meta.%s%s: unknown key (known: %s); a typo, or a file from a newer edgesplit?"
                          % (where, unknown[0], ", ".join(known)))


def parse_meta(data: Any) -> PolicySpec:
    """Validate a decoded ``meta`` object; raise PolicyError naming the first bad field."""
    if not isinstance(data, dict):
        raise PolicyError("meta: expected a JSON object, got %s" % type(data).__name__)
    if "format_version" not in data:
        raise PolicyError("meta: missing key 'format_version'")
    version = _int(data["format_version"], "format_version", 1)
    if version > FORMAT_VERSION:
        raise _fail("format_version", "%d is newer than this edgesplit reads (%d): upgrade edgesplit on "
                                      "this board" % (version, FORMAT_VERSION))
    _no_unknown_keys(data, TOP_LEVEL_KEYS, "")
    for key in TOP_LEVEL_KEYS:
        if key not in data:
            raise PolicyError("meta: missing key %r" % key)
    kind = _choice(data["kind"], "kind", KINDS)
    features = _features(data["features"])
    norm = _dict(data["normalisation"], "normalisation")
    _no_unknown_keys(norm, ("mean", "std"), "normalisation")
    mean = _finite_floats(_require(norm, "mean", "normalisation"), "normalisation.mean", len(features))
    std = _finite_floats(_require(norm, "std", "normalisation"), "normalisation.std", len(features))
    for i, s in enumerate(std):
        if s <= 0:
            raise _fail("normalisation.std[%d]" % i, "must be > 0, got %r (a constant feature? use 1)" % s)
    sizes = _list(data["layer_sizes"], "layer_sizes")
    if len(sizes) < 2:
        raise _fail("layer_sizes", "expected [inputs, ..., outputs] (at least 2 sizes), got %r" % (sizes,))
    sizes = tuple(_int(s, "layer_sizes[%d]" % i, 1) for i, s in enumerate(sizes))
    if sizes[0] != len(features):
        raise _fail("layer_sizes[0]", "is %d but %d features are listed" % (sizes[0], len(features)))
    acts = _list(data["activations"], "activations")
    if len(acts) != len(sizes) - 1:
        raise _fail("activations", "expected %d (one per layer), got %d" % (len(sizes) - 1, len(acts)))
    acts = tuple(_choice(a, "activations[%d]" % i, ACTIVATIONS) for i, a in enumerate(acts))
    if kind == "linear" and (len(sizes) != 2 or acts != ("identity",)):
        raise _fail("kind", "'linear' means one layer with activation 'identity'; this has %d layer(s) with "
                            "%s: use kind 'mlp'" % (len(sizes) - 1, list(acts)))
    decoder = _decoder(data["decoder"])
    if sizes[-1] != decoder.n_outputs:
        raise _fail("layer_sizes[-1]", "is %d but the %s decoder reads %d outputs"
                    % (sizes[-1], data["decoder"]["type"], decoder.n_outputs))
    return PolicySpec(kind=kind, features=features, mean=mean, std=std, layer_sizes=sizes,
                      activations=acts, decoder=decoder, provenance=_provenance(data["provenance"]),
                      format_version=version)


def spec_to_meta(spec: PolicySpec) -> Dict[str, Any]:
    return {"format_version": spec.format_version, "kind": spec.kind, "features": list(spec.features),
            "normalisation": {"mean": list(spec.mean), "std": list(spec.std)},
            "layer_sizes": list(spec.layer_sizes), "activations": list(spec.activations),
            "decoder": spec.decoder.to_meta(), "provenance": dict(spec.provenance)}


def check_arrays(spec: PolicySpec, arrays: Mapping[str, np.ndarray], source: str) -> None:
    """Every array the layers need is present, float, finite and of the right shape; nothing else."""
    expected = spec.array_names()
    extra = sorted(set(arrays) - set(expected) - {META_KEY})
    if extra:
        raise PolicyError("%s: unexpected array %r (layer_sizes %s needs %s)"
                          % (source, extra[0], list(spec.layer_sizes), ", ".join(expected)))
    for i in range(len(spec.layer_sizes) - 1):
        n_in, n_out = spec.layer_sizes[i], spec.layer_sizes[i + 1]
        for name, shape in (("W%d" % i, (n_out, n_in)), ("b%d" % i, (n_out,))):
            if name not in arrays:
                raise PolicyError("%s: array %r is missing (layer %d: %d -> %d)" % (source, name, i, n_in, n_out))
            arr = arrays[name]
            if arr.dtype.kind != "f" or arr.dtype.itemsize not in (4, 8):
                raise PolicyError("%s: array %r has dtype %s: expected float32 or float64"
                                  % (source, name, arr.dtype))
            if arr.shape != shape:
                raise PolicyError("%s: array %r has shape %s: layer_sizes %s needs %s"
                                  % (source, name, arr.shape, list(spec.layer_sizes), shape))
            if not np.isfinite(arr).all():
                raise PolicyError("%s: array %r holds NaN or infinite values" % (source, name))
