"""Reading and writing frozen-policy files.

``save_policy`` builds the metadata, validates it with the same checks ``load_policy`` runs, stamps
the content id and writes atomically (temporary sibling + rename), so whatever it writes loads.

The policy id is the sha256 of the canonical metadata (without the id itself) and of every array's
name, dtype, shape and bytes. It is stable across re-saves of the same content, unlike a hash of the
zip file, whose entries carry timestamps; ``load_policy`` recomputes it, so a file edited after
saving is refused.
"""
import datetime
import hashlib
import json
import re
import zipfile
import zlib
from pathlib import Path
from typing import Any, Collection, Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from edgesplit.policies_lite.errors import PolicyError
from edgesplit.policies_lite.files import atomic_write
from edgesplit.policies_lite.features import missing_features
from edgesplit.policies_lite.format import (DEFAULT_MAX_INTERVAL, FORMAT_VERSION, META_KEY, PolicySpec, check_arrays,
                                  parse_meta, spec_to_meta)
from edgesplit.policies_lite.policy import FrozenPolicy

PathLike = Union[str, Path]

# What numpy / zipfile raise on a damaged or foreign file, as far as reading an .npz goes.
_READ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, KeyError, TypeError,
                RuntimeError, NotImplementedError, OverflowError, MemoryError, UnicodeDecodeError)


# np.load takes a file for an .npz only if it starts with one of these (a zip's first local header, or an empty
# archive's end record), for an .npy only with the last; anything else it unpickles, or refuses to.
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
_NPY_MAGIC = b"\x93NUMPY"


def _reject_constant(name: str):
    raise ValueError("%s is not valid JSON" % name)


def canonical_json(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False).encode("utf-8")


_DIGEST = re.compile(r"[0-9a-f]{32,}")


def short_policy_id(policy_id: str) -> str:
    """A policy id as people read it: every digest in it (a policy file's sha256, 64 hex digits) cut to its first 12,
    the rest whole (``static:neurosurgeon (cut 0)``, ``edgeml-tl:`` and the like stay copyable)."""
    return _DIGEST.sub(lambda m: m.group()[:12], policy_id)


def content_id(meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> str:
    """sha256 of the metadata (minus provenance.policy_id) and the weight arrays."""
    meta = dict(meta)
    provenance = dict(meta.get("provenance") or {})
    provenance.pop("policy_id", None)
    meta["provenance"] = provenance
    digest = hashlib.sha256(canonical_json(meta))
    for name in sorted(arrays):
        if name == META_KEY:
            continue
        arr = np.ascontiguousarray(arrays[name])
        digest.update(("\0%s\0%s\0%s\0" % (name, arr.dtype.str, arr.shape)).encode("ascii"))
        digest.update(arr.tobytes())
    return digest.hexdigest()


# ---------------------------------------------------------------- reading


def _check_magic(path: Path) -> None:
    """Refuse a file that is neither a zip (.npz) nor a .npy by its first bytes: numpy would take it for a pickle
    and advise loading it unsafely, which is the wrong advice for a text file renamed .npz."""
    try:
        with open(str(path), "rb") as handle:
            head = handle.read(len(_NPY_MAGIC))
    except FileNotFoundError:
        raise PolicyError("%s: no such file" % path) from None
    except IsADirectoryError:
        raise PolicyError("%s: is a directory, not a policy .npz" % path) from None
    except OSError as exc:
        raise PolicyError("%s: cannot read (%s)" % (path, exc)) from None
    if not head:
        raise PolicyError("%s: empty file, not a policy .npz" % path)
    if head.startswith(_NPY_MAGIC):
        raise PolicyError("%s: a single .npy array, not a policy .npz (weights + meta)" % path)
    if any(head.startswith(magic) for magic in _ZIP_MAGICS):
        return
    if len(head) < len(_ZIP_MAGICS[0]) and any(magic.startswith(head) for magic in _ZIP_MAGICS):
        raise PolicyError("%s: damaged policy .npz, truncated to %d bytes: copy it again or re-export it"
                          % (path, len(head)))
    raise PolicyError("%s: not a policy .npz (a zip archive of weights and meta, as save_policy writes); this "
                      "file starts with %r" % (path, head))


def _read_npz(path: Path) -> Dict[str, np.ndarray]:
    _check_magic(path)
    try:
        loaded = np.load(str(path), allow_pickle=False)
    except FileNotFoundError:
        raise PolicyError("%s: no such file" % path) from None
    except IsADirectoryError:
        raise PolicyError("%s: is a directory, not a policy .npz" % path) from None
    except _READ_ERRORS as exc:
        # The first bytes were an archive's or an array's: the rest is cut short or corrupted.
        raise PolicyError("%s: damaged policy .npz, truncated or corrupted (%s: %s): copy it again or re-export it"
                          % (path, type(exc).__name__, exc)) from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise PolicyError("%s: a single .npy array, not a policy .npz (weights + meta)" % path)
    try:
        with loaded:
            return {name: loaded[name] for name in loaded.files}
    except ValueError as exc:
        if "pickle" not in str(exc):
            raise PolicyError("%s: damaged policy .npz (%s: %s): copy it again or re-export it"
                              % (path, type(exc).__name__, exc)) from None
        # numpy's advice (load it unsafely) is wrong here: a policy holds numbers and its JSON meta, never objects
        raise PolicyError("%s: holds a Python object array, which no policy has: not a file save_policy wrote "
                          "(re-export the policy; it is not loaded, objects in it could run code)" % path) from None
    except _READ_ERRORS as exc:
        raise PolicyError("%s: damaged policy .npz (%s: %s): copy it again or re-export it"
                          % (path, type(exc).__name__, exc)) from None


def _decode_meta(raw: Any, path: Path) -> Any:
    if not isinstance(raw, np.ndarray):
        raise PolicyError("%s: no %r array: this .npz is not a policy" % (path, META_KEY))
    if raw.dtype.kind == "U" and raw.ndim == 0:
        text = str(raw[()])
    elif raw.dtype == np.uint8 and raw.ndim == 1:
        try:
            text = raw.tobytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PolicyError("%s: %r bytes are not UTF-8 (%s)" % (path, META_KEY, exc)) from None
    else:
        raise PolicyError("%s: %r must be a 0-d unicode array or 1-d uint8 bytes holding JSON, got %s %s"
                          % (path, META_KEY, raw.dtype, raw.shape))
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise PolicyError("%s: %r is not valid JSON (%s)" % (path, META_KEY, exc)) from None


def read_policy_file(path: PathLike) -> Tuple[PolicySpec, Dict[str, np.ndarray]]:
    """Read and fully validate a policy file; return its spec and weight arrays."""
    path = Path(path)
    arrays = _read_npz(path)
    meta = _decode_meta(arrays.get(META_KEY), path)
    try:
        spec = parse_meta(meta)
        check_arrays(spec, arrays, str(path))
    except PolicyError as exc:
        message = str(exc)
        raise PolicyError(message if message.startswith(str(path)) else "%s: %s" % (path, message)) from None
    except Exception as exc:  # a file is untrusted bytes: what a check missed is still a refusal
        raise PolicyError("%s: metadata cannot be checked (%s: %s): re-export the policy"
                          % (path, type(exc).__name__, str(exc)[:200])) from None
    if content_id(meta, arrays) != spec.policy_id:
        raise PolicyError("%s: provenance.policy_id does not match the file's content (weights or metadata "
                          "were changed after saving): re-save it with policies_lite.save_policy" % path)
    return spec, {k: v for k, v in arrays.items() if k != META_KEY}


def load_policy(path: PathLike, available_features: Optional[Collection[str]] = None) -> FrozenPolicy:
    """Load a frozen policy; with ``available_features``, refuse one that needs a feature not in it."""
    spec, arrays = read_policy_file(path)
    if available_features is not None:
        missing = missing_features(spec.features, set(available_features))
        if missing:
            raise PolicyError("%s: this board cannot supply feature(s) %s that the policy needs (it supplies "
                              "%s): use a policy trained on these features"
                              % (path, ", ".join(missing), ", ".join(sorted(available_features)) or "none"))
    return FrozenPolicy(spec, arrays, source=Path(path))


# ---------------------------------------------------------------- writing


def edgeml_decoder(n_exits: int, n_cuts: int, max_interval: int = DEFAULT_MAX_INTERVAL,
                   thresholds: str = "sigmoid", scale: str = "index") -> Dict[str, Any]:
    """Decoder metadata for an EdgeML action (outputs: n_exits thresholds, cut, interval)."""
    return {"type": "edgeml", "n_exits": n_exits, "n_cuts": n_cuts, "max_interval": max_interval,
            "thresholds": thresholds, "scale": scale}


def task_choice_decoder(choices: Sequence[Tuple[int, Optional[int]]]) -> Dict[str, Any]:
    """Decoder metadata for a per-task argmax over (exit, cut) pairs (cut None: no offload)."""
    return {"type": "task_choice", "choices": [[e, c] for e, c in choices]}


def _float_array(value: Any, what: str) -> np.ndarray:
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise PolicyError("%s: not an array of numbers (%s)" % (what, exc)) from None
    if arr.dtype.kind not in "fiu" or arr.dtype.kind == "b":
        raise PolicyError("%s: expected numbers, got dtype %s" % (what, arr.dtype))
    dtype = np.dtype("<f4") if arr.dtype == np.float32 else np.dtype("<f8")
    return np.ascontiguousarray(arr, dtype=dtype)


def save_policy(path: PathLike, *, features: Sequence[str], layers: Sequence[Tuple[Any, Any]],
                activations: Sequence[str], decoder: Mapping[str, Any], mean: Optional[Sequence[float]] = None,
                std: Optional[Sequence[float]] = None, provenance: Optional[Mapping[str, Any]] = None,
                kind: Optional[str] = None) -> str:
    """Write a policy file that ``load_policy`` accepts; return its policy id.

    ``layers``: one ``(W, b)`` per layer, W shaped (outputs, inputs). ``mean``/``std`` default to no
    normalisation. ``provenance`` needs ``traces`` and ``algorithm``; ``date`` defaults to now (UTC).
    A linear policy is one layer with activation ``identity`` (``kind`` is inferred if not given).
    """
    features = list(features)
    arrays = {}
    sizes = [len(features)]
    for i, (weight, bias) in enumerate(layers):
        arrays["W%d" % i] = _float_array(weight, "layers[%d] W" % i)
        arrays["b%d" % i] = _float_array(bias, "layers[%d] b" % i)
        if arrays["W%d" % i].ndim != 2:
            raise PolicyError("layers[%d] W: expected a 2-D (outputs, inputs) matrix, got shape %s"
                              % (i, arrays["W%d" % i].shape))
        sizes.append(int(arrays["W%d" % i].shape[0]))
    if kind is None:
        kind = "linear" if len(layers) == 1 and list(activations) == ["identity"] else "mlp"
    provenance = dict(provenance or {})
    provenance.setdefault("traces", [])
    provenance.setdefault("algorithm", "unspecified")
    provenance.setdefault("date", datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    provenance["policy_id"] = "pending"
    n = len(features)
    meta = {"format_version": FORMAT_VERSION, "kind": kind, "features": features,
            "normalisation": {"mean": [float(v) for v in (mean if mean is not None else [0.0] * n)],
                              "std": [float(v) for v in (std if std is not None else [1.0] * n)]},
            "layer_sizes": sizes, "activations": list(activations), "decoder": dict(decoder),
            "provenance": provenance}
    spec = parse_meta(meta)
    check_arrays(spec, arrays, "save_policy")
    meta = spec_to_meta(spec)
    meta["provenance"]["policy_id"] = content_id(meta, arrays)
    text = canonical_json(meta).decode("utf-8")
    with atomic_write(path) as handle:
        np.savez(handle, **dict(arrays, **{META_KEY: np.array(text)}))
    return meta["provenance"]["policy_id"]
