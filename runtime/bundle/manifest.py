"""The bundle manifest: a versioned, strictly validated description of an exported model.

A bundle is a directory holding ``manifest.json`` and the segment files it lists. The main branch
is an ordered chain of segments; cut ``k`` is the boundary before main segment ``k`` (cut 0 ships
the raw input, the last cut is after the whole main branch). Each cut lists every live tensor that
crosses it. Exits hang off cuts; the last exit is the main branch's own output.

Parsing never trusts the file: every field is type-checked and every error names the field path,
e.g. ``manifest.json: segments[2].sha256: expected 64 lowercase hex digits``.
"""
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from edgesplit.runtime.errors import BundleError
from edgesplit.runtime.transport.framing import DTYPES  # what a manifest may declare is what the wire carries

FORMAT = "edgesplit-bundle"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
BACKENDS = ("onnxruntime", "tflite")
ROLES = ("main", "exit")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SAFE_FILE = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class TensorSpec:
    """One tensor at a segment boundary. ``None`` in ``shape`` is a dynamic dimension.

    ``batched`` says the first dimension is the batch (activations); shape-like tensors (for
    example an int64 target shape for Reshape) are not batched and cross whole.
    """

    name: str
    dtype: str
    shape: Tuple[Optional[int], ...]
    batched: bool = True

    @property
    def itemsize(self) -> int:
        return np.dtype(self.dtype).itemsize

    def bytes_per_sample(self) -> int:
        dims = self.shape[1:] if self.batched else self.shape
        count = 1
        for dim in dims:
            count *= dim if dim is not None else 1
        return count * self.itemsize


@dataclass(frozen=True)
class Segment:
    id: str
    role: str
    file: str
    backend: str
    sha256: str
    inputs: Tuple[TensorSpec, ...]
    outputs: Tuple[TensorSpec, ...]
    macs: int


@dataclass(frozen=True)
class Cut:
    id: int
    tensors: Tuple[TensorSpec, ...]
    bytes_per_sample: int
    macs_before: int
    macs_after: int


@dataclass(frozen=True)
class Exit:
    """An exit: a head segment on a cut, or (head None) the main branch's output.

    ``threshold`` is a normalised entropy in [0, 1]: the task stops here when the head's softmax
    entropy is below it. ``macs`` counts the main branch up to the cut plus the head.
    """

    id: int
    cut: int
    head: Optional[str]
    accuracy: Optional[float]
    threshold: float
    macs: int


@dataclass(frozen=True)
class Manifest:
    name: str
    opset: int
    inputs: Tuple[TensorSpec, ...]
    outputs: Tuple[TensorSpec, ...]
    segments: Tuple[Segment, ...]
    cuts: Tuple[Cut, ...]
    exits: Tuple[Exit, ...]
    tree_blocks: Tuple[Dict[str, Any], ...] = ()
    profiles: Dict[str, Any] = field(default_factory=dict)
    provenance: Dict[str, Any] = field(default_factory=dict)
    bundle_sha256: str = ""
    format_version: int = FORMAT_VERSION

    @property
    def main(self) -> Tuple[Segment, ...]:
        return tuple(s for s in self.segments if s.role == "main")

    def segment(self, segment_id: str) -> Segment:
        for seg in self.segments:
            if seg.id == segment_id:
                return seg
        raise KeyError(segment_id)

    def exits_at(self, cut_id: int) -> Tuple[Exit, ...]:
        return tuple(e for e in self.exits if e.cut == cut_id)

    def exit_output(self, exit_id: int) -> TensorSpec:
        """The scores tensor of exit ``exit_id``: the model's output, or the exit head's (what a peer replies)."""
        head = self.exits[exit_id].head
        return self.outputs[0] if head is None else self.segment(head).outputs[0]


# ---------------------------------------------------------------- hashing


def canonical_json(data: Dict[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode("utf-8")


def bundle_hash(data: Dict[str, Any]) -> str:
    """The bundle's identity: sha256 of the canonical manifest without its own hash field.

    The manifest carries each file's sha256, so this hash covers every segment's bytes.
    """
    body = {k: v for k, v in data.items() if k != "bundle_sha256"}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------- parsing


class _Field:
    """A value at a path in the manifest, with typed accessors that fail naming the path."""

    def __init__(self, value: Any, path: str):
        self.value = value
        self.path = path

    def fail(self, expected: str) -> BundleError:
        shown = json.dumps(self.value)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        return BundleError("%s: %s: expected %s, got %s" % (MANIFEST_NAME, self.path, expected, shown))

    def obj(self, required: Tuple[str, ...], optional: Tuple[str, ...] = ()) -> Dict[str, "_Field"]:
        if not isinstance(self.value, dict):
            raise self.fail("an object")
        unknown = sorted(set(self.value) - set(required) - set(optional))
        if unknown:
            raise BundleError("%s: %s: unknown field %r (allowed: %s)" % (
                MANIFEST_NAME, self.path or "top level", unknown[0], ", ".join(required + optional)))
        missing = [k for k in required if k not in self.value]
        if missing:
            raise BundleError("%s: %s: missing field %r" % (
                MANIFEST_NAME, self.path or "top level", missing[0]))
        prefix = self.path + "." if self.path else ""
        return {k: _Field(v, prefix + k) for k, v in self.value.items()}

    def items(self) -> List["_Field"]:
        if not isinstance(self.value, list):
            raise self.fail("a list")
        return [_Field(v, "%s[%d]" % (self.path, i)) for i, v in enumerate(self.value)]

    def str(self, pattern: Optional[re.Pattern] = None, choices: Tuple[str, ...] = ()) -> str:
        if not isinstance(self.value, str) or not self.value:
            raise self.fail("a non-empty string")
        if choices and self.value not in choices:
            raise self.fail("one of " + ", ".join(choices))
        if pattern is not None and not pattern.match(self.value):
            raise self.fail("a string matching " + pattern.pattern)
        return self.value

    def int(self, minimum: int = 0) -> int:
        if isinstance(self.value, bool) or not isinstance(self.value, int) or self.value < minimum:
            raise self.fail("an integer >= %d" % minimum)
        return self.value

    def unit_float(self) -> float:
        if isinstance(self.value, bool) or not isinstance(self.value, (int, float)):
            raise self.fail("a number in [0, 1]")
        if not 0.0 <= float(self.value) <= 1.0:
            raise self.fail("a number in [0, 1]")
        return float(self.value)

    def bool(self) -> bool:
        if not isinstance(self.value, bool):
            raise self.fail("true or false")
        return self.value

    def dict(self) -> Dict[str, Any]:
        if not isinstance(self.value, dict):
            raise self.fail("an object")
        return self.value


def _tensor(node: _Field) -> TensorSpec:
    f = node.obj(("name", "dtype", "shape"), ("batched",))
    shape = []
    for dim in f["shape"].items():
        if dim.value is None:
            shape.append(None)
        else:
            shape.append(dim.int(minimum=1))
    batched = f["batched"].bool() if "batched" in f else True
    return TensorSpec(f["name"].str(), f["dtype"].str(choices=DTYPES), tuple(shape), batched)


def _tensors(node: _Field) -> Tuple[TensorSpec, ...]:
    specs = tuple(_tensor(item) for item in node.items())
    if not specs:
        raise node.fail("at least one tensor")
    return specs


def _segment(node: _Field) -> Segment:
    f = node.obj(("id", "role", "file", "backend", "sha256", "inputs", "outputs", "macs"))
    return Segment(
        id=f["id"].str(),
        role=f["role"].str(choices=ROLES),
        file=f["file"].str(pattern=_SAFE_FILE),
        backend=f["backend"].str(choices=BACKENDS),
        sha256=f["sha256"].str(pattern=_SHA256),
        inputs=_tensors(f["inputs"]),
        outputs=_tensors(f["outputs"]),
        macs=f["macs"].int(),
    )


def _cut(node: _Field) -> Cut:
    f = node.obj(("id", "tensors", "bytes_per_sample", "macs_before", "macs_after"))
    return Cut(f["id"].int(), _tensors(f["tensors"]), f["bytes_per_sample"].int(),
               f["macs_before"].int(), f["macs_after"].int())


def _exit(node: _Field) -> Exit:
    f = node.obj(("id", "cut", "head", "accuracy", "threshold", "macs"))
    head = None if f["head"].value is None else f["head"].str()
    accuracy = None if f["accuracy"].value is None else f["accuracy"].unit_float()
    return Exit(f["id"].int(), f["cut"].int(), head, accuracy, f["threshold"].unit_float(), f["macs"].int())


_TOP_REQUIRED = ("format", "format_version", "name", "opset", "inputs", "outputs", "segments", "cuts",
                 "exits", "bundle_sha256")
_TOP_OPTIONAL = ("tree_blocks", "profiles", "provenance")


def parse_manifest(data: Any) -> Manifest:
    """Validate a decoded manifest.json and return it typed; raise BundleError naming the field."""
    top = _Field(data, "")
    if isinstance(data, dict) and data.get("format") == FORMAT:
        version = data.get("format_version")
        if isinstance(version, int) and version > FORMAT_VERSION:
            raise BundleError("%s: format_version %d is newer than this runtime understands (%d): "
                              "upgrade edgesplit on this machine" % (MANIFEST_NAME, version, FORMAT_VERSION))
    f = top.obj(_TOP_REQUIRED, _TOP_OPTIONAL)
    f["format"].str(choices=(FORMAT,))
    if f["format_version"].int(minimum=1) != FORMAT_VERSION:
        raise f["format_version"].fail(str(FORMAT_VERSION))
    tree_blocks = tuple(item.dict() for item in f["tree_blocks"].items()) if "tree_blocks" in f else ()
    if tree_blocks:
        raise BundleError("%s: tree_blocks: this runtime does not run model-tree blocks yet; "
                          "export the bundle without them" % MANIFEST_NAME)
    manifest = Manifest(
        name=f["name"].str(),
        opset=f["opset"].int(minimum=1),
        inputs=_tensors(f["inputs"]),
        outputs=_tensors(f["outputs"]),
        segments=tuple(_segment(item) for item in f["segments"].items()),
        cuts=tuple(_cut(item) for item in f["cuts"].items()),
        exits=tuple(_exit(item) for item in f["exits"].items()),
        tree_blocks=tree_blocks,
        profiles=f["profiles"].dict() if "profiles" in f else {},
        provenance=f["provenance"].dict() if "provenance" in f else {},
        bundle_sha256=f["bundle_sha256"].str(pattern=_SHA256),
    )
    check_structure(manifest)
    return manifest


def _structure_error(path: str, message: str) -> BundleError:
    return BundleError("%s: %s: %s" % (MANIFEST_NAME, path, message))


def check_structure(manifest: Manifest) -> None:
    """Check that segments, cuts and exits chain into one runnable model."""
    ids = [s.id for s in manifest.segments]
    for i, seg_id in enumerate(ids):
        if ids.index(seg_id) != i:
            raise _structure_error("segments[%d].id" % i, "duplicate segment id %r" % seg_id)
    main = manifest.main
    if not main:
        raise _structure_error("segments", "no segment has role 'main'")
    if len(manifest.cuts) != len(main) + 1:
        raise _structure_error("cuts", "expected %d cuts (one before each of the %d main segments and one "
                               "after the last), got %d" % (len(main) + 1, len(main), len(manifest.cuts)))
    for k, cut in enumerate(manifest.cuts):
        if cut.id != k:
            raise _structure_error("cuts[%d].id" % k, "expected %d (cuts are numbered in order)" % k)
    _names_equal("cuts[0].tensors", manifest.cuts[0].tensors, manifest.inputs, "the model inputs")
    _names_equal("cuts[%d].tensors" % len(main), manifest.cuts[-1].tensors, manifest.outputs,
                 "the model outputs")
    for k, seg in enumerate(main):
        index = ids.index(seg.id)
        available = {t.name for t in manifest.cuts[k].tensors}
        for t in seg.inputs:
            if t.name not in available:
                raise _structure_error("segments[%d].inputs" % index, "tensor %r does not cross cut %d" % (t.name, k))
        produced = available | {t.name for t in seg.outputs}
        for t in manifest.cuts[k + 1].tensors:
            if t.name not in produced:
                raise _structure_error("cuts[%d].tensors" % (k + 1),
                                       "tensor %r is neither produced by segment %r nor carried across cut %d"
                                       % (t.name, seg.id, k))
    for i, ex in enumerate(manifest.exits):
        path = "exits[%d]" % i
        if ex.id != i:
            raise _structure_error(path + ".id", "expected %d (exits are numbered in order)" % i)
        if ex.cut >= len(manifest.cuts):
            raise _structure_error(path + ".cut", "there is no cut %d" % ex.cut)
        if i and ex.cut < manifest.exits[i - 1].cut:
            raise _structure_error(path + ".cut", "exits must be ordered along the main branch")
        if ex.head is None:
            if ex.cut != len(main) or i != len(manifest.exits) - 1:
                raise _structure_error(path + ".head", "only the last exit may be the main output (head null)")
            continue
        if ex.head not in ids or manifest.segment(ex.head).role != "exit":
            raise _structure_error(path + ".head", "%r is not a segment with role 'exit'" % ex.head)
        crossing = {t.name for t in manifest.cuts[ex.cut].tensors}
        for t in manifest.segment(ex.head).inputs:
            if t.name not in crossing:
                raise _structure_error(path + ".head", "head input %r does not cross cut %d" % (t.name, ex.cut))
    if not manifest.exits or manifest.exits[-1].head is not None:
        raise _structure_error("exits", "the last exit must be the main output (head null, cut %d)" % len(main))


def _names_equal(path: str, got: Tuple[TensorSpec, ...], want: Tuple[TensorSpec, ...], what: str) -> None:
    if [t.name for t in got] != [t.name for t in want]:
        raise _structure_error(path, "expected %s %s, got %s" % (
            what, [t.name for t in want], [t.name for t in got]))


# ---------------------------------------------------------------- serialising


def tensor_to_dict(spec: TensorSpec) -> Dict[str, Any]:
    out = {"name": spec.name, "dtype": spec.dtype, "shape": list(spec.shape)}
    if not spec.batched:
        out["batched"] = False
    return out


def manifest_to_dict(manifest: Manifest) -> Dict[str, Any]:
    tensors = lambda specs: [tensor_to_dict(t) for t in specs]  # noqa: E731
    data = {
        "format": FORMAT,
        "format_version": manifest.format_version,
        "name": manifest.name,
        "opset": manifest.opset,
        "inputs": tensors(manifest.inputs),
        "outputs": tensors(manifest.outputs),
        "segments": [
            {"id": s.id, "role": s.role, "file": s.file, "backend": s.backend, "sha256": s.sha256,
             "inputs": tensors(s.inputs), "outputs": tensors(s.outputs), "macs": s.macs}
            for s in manifest.segments
        ],
        "cuts": [
            {"id": c.id, "tensors": tensors(c.tensors), "bytes_per_sample": c.bytes_per_sample,
             "macs_before": c.macs_before, "macs_after": c.macs_after}
            for c in manifest.cuts
        ],
        "exits": [
            {"id": e.id, "cut": e.cut, "head": e.head, "accuracy": e.accuracy, "threshold": e.threshold,
             "macs": e.macs}
            for e in manifest.exits
        ],
        "tree_blocks": list(manifest.tree_blocks),
        "profiles": manifest.profiles,
        "provenance": manifest.provenance,
    }
    data["bundle_sha256"] = bundle_hash(data)
    return data
