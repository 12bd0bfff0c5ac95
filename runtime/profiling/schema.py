"""The profile document: what ``edgesplit profile`` measures, and its strict validation.

A profile lives in ``BUNDLE/profiles/<board>.json``, outside ``manifest.json``, so profiling a bundle
on a board never changes the bundle's hash. It records the hash of the bundle it measured; a profile
whose hash differs belongs to another version of the bundle and is refused when loaded.

Times are milliseconds of wall time per call with batch 1, measured after warm-up runs.

``energy`` (optional; absent in profiles written before it existed, null when the board's energy
proxy could not be read) holds the board's energy proxy reading while the bundle ran and while it
did not (``edgesplit.runtime.profiling.energy``), in the proxy's own unit.
"""
import re
from typing import Any, Dict, List, Optional, Sequence

from edgesplit.runtime.errors import EdgesplitError

FORMAT = "edgesplit-profile"
FORMAT_VERSION = 1
BOARD_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

_TOP = ("format", "format_version", "board", "bundle_name", "bundle_sha256", "created", "host", "backends",
        "settings", "segments", "cuts")
_SETTINGS = ("batch", "warmup", "repeats", "threads", "providers")
_SEGMENT = ("id", "role", "backend", "provider", "macs", "median_ms", "p90_ms", "mean_ms", "min_ms", "max_ms")
_CUT = ("id", "tensors", "bytes_per_sample", "main_median_ms_before", "main_median_ms_after")
_TIMES = ("median_ms", "p90_ms", "mean_ms", "min_ms", "max_ms")
_OPTIONAL_TOP = ("energy",)


class ProfileError(EdgesplitError):
    """A profile file is malformed, or belongs to another bundle."""


def _fail(where: str, path: str, message: str) -> ProfileError:
    return ProfileError("%s: %s: %s" % (where, path or "top level", message))


def _exact_keys(data: Any, keys: Sequence[str], where: str, path: str,
                optional: Sequence[str] = ()) -> Dict[str, Any]:
    if not isinstance(data, dict):
        raise _fail(where, path, "expected an object, got %s" % type(data).__name__)
    unknown = sorted(set(data) - set(keys) - set(optional))
    if unknown:
        raise _fail(where, path, "unknown field %r (allowed: %s)" % (unknown[0], ", ".join(list(keys) + list(optional))))
    missing = [k for k in keys if k not in data]
    if missing:
        raise _fail(where, path, "missing field %r" % missing[0])
    return data


def _number(value: Any, where: str, path: str, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        raise _fail(where, path, "expected a number >= %g, got %r" % (minimum, value))
    return float(value)


def _integer(value: Any, where: str, path: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _fail(where, path, "expected an integer >= %d, got %r" % (minimum, value))
    return value


def _string(value: Any, where: str, path: str, pattern: Optional[re.Pattern] = None) -> str:
    if not isinstance(value, str) or not value or (pattern is not None and not pattern.match(value)):
        raise _fail(where, path, "expected a non-empty string%s, got %r"
                    % (" matching " + pattern.pattern if pattern is not None else "", value))
    return value


def _strings(value: Any, where: str, path: str) -> List[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _fail(where, path, "expected a list of strings, got %r" % (value,))
    return value


def validate_profile(data: Any, where: str = "profile") -> Dict[str, Any]:
    """Check every field of a decoded profile; raise ProfileError naming ``where`` and the field."""
    _exact_keys(data, _TOP, where, "", optional=_OPTIONAL_TOP)
    if data["format"] != FORMAT:
        raise _fail(where, "format", "expected %r, got %r" % (FORMAT, data["format"]))
    version = _integer(data["format_version"], where, "format_version", 1)
    if version != FORMAT_VERSION:
        raise _fail(where, "format_version", "this runtime reads version %d, got %d: re-run 'edgesplit profile'"
                    % (FORMAT_VERSION, version))
    _string(data["board"], where, "board", BOARD_NAME)
    _string(data["bundle_name"], where, "bundle_name")
    _string(data["bundle_sha256"], where, "bundle_sha256", _SHA256)
    _string(data["created"], where, "created")
    for key in ("host", "backends"):
        if not isinstance(data[key], dict) or not all(isinstance(v, (str, int, float)) for v in data[key].values()):
            raise _fail(where, key, "expected an object of strings and numbers")
    settings = _exact_keys(data["settings"], _SETTINGS, where, "settings")
    _integer(settings["batch"], where, "settings.batch", 1)
    _integer(settings["warmup"], where, "settings.warmup", 0)
    _integer(settings["repeats"], where, "settings.repeats", 1)
    if settings["threads"] is not None:
        _integer(settings["threads"], where, "settings.threads", 1)
    _strings(settings["providers"], where, "settings.providers")
    if not isinstance(data["segments"], list) or not data["segments"]:
        raise _fail(where, "segments", "expected a non-empty list")
    for i, seg in enumerate(data["segments"]):
        path = "segments[%d]" % i
        _exact_keys(seg, _SEGMENT, where, path)
        _string(seg["id"], where, path + ".id")
        if seg["role"] not in ("main", "exit"):
            raise _fail(where, path + ".role", "expected 'main' or 'exit', got %r" % (seg["role"],))
        _string(seg["backend"], where, path + ".backend")
        if seg["provider"] is not None:
            _string(seg["provider"], where, path + ".provider")
        _integer(seg["macs"], where, path + ".macs")
        for key in _TIMES:
            _number(seg[key], where, "%s.%s" % (path, key))
        if not seg["min_ms"] <= seg["median_ms"] <= seg["p90_ms"] <= seg["max_ms"]:
            raise _fail(where, path, "times must satisfy min <= median <= p90 <= max")
    if not isinstance(data["cuts"], list) or not data["cuts"]:
        raise _fail(where, "cuts", "expected a non-empty list")
    for i, cut in enumerate(data["cuts"]):
        path = "cuts[%d]" % i
        _exact_keys(cut, _CUT, where, path)
        if _integer(cut["id"], where, path + ".id") != i:
            raise _fail(where, path + ".id", "expected %d (cuts in order)" % i)
        _strings(cut["tensors"], where, path + ".tensors")
        _integer(cut["bytes_per_sample"], where, path + ".bytes_per_sample")
        _number(cut["main_median_ms_before"], where, path + ".main_median_ms_before")
        _number(cut["main_median_ms_after"], where, path + ".main_median_ms_after")
    if data.get("energy") is not None:
        _validate_energy(data["energy"], where)
    return data


def _validate_energy(energy: Any, where: str) -> None:
    from edgesplit.runtime.profiling.energy import ENERGY_KEYS

    _exact_keys(energy, ENERGY_KEYS, where, "energy")
    for key in ("proxy", "unit", "source"):
        _string(energy[key], where, "energy." + key)
    for key in ("busy_mean", "idle_mean", "busy_s", "idle_s", "rate_hz"):
        _number(energy[key], where, "energy." + key)
    for key in ("busy_samples", "idle_samples"):
        _integer(energy[key], where, "energy." + key, 1)


def check_matches_bundle(data: Dict[str, Any], bundle, where: str) -> None:
    """Refuse a profile measured on another version of the bundle, or whose segments differ from it."""
    if data["bundle_sha256"] != bundle.hash:
        raise ProfileError("%s: measured bundle %s... but this bundle is %s...: the bundle changed since it was "
                           "profiled; run 'edgesplit profile %s --board %s' again"
                           % (where, data["bundle_sha256"][:12], bundle.hash[:12], bundle.root, data["board"]))
    want = sorted(s.id for s in bundle.manifest.segments)
    got = sorted(s["id"] for s in data["segments"])
    if got != want:
        raise ProfileError("%s: profiles segments %s but the bundle has %s" % (where, got, want))
    if len(data["cuts"]) != len(bundle.manifest.cuts):
        raise ProfileError("%s: has %d cuts but the bundle has %d"
                           % (where, len(data["cuts"]), len(bundle.manifest.cuts)))
