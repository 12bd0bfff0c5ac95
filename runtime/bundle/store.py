"""Reading and writing bundle directories.

Loading verifies everything before any segment is handed to a backend: the manifest parses and
validates, every listed file exists and matches its sha256, and the bundle hash matches. A bundle
is accepted whole or refused whole.

Writing is atomic: files go to a temporary sibling directory that is renamed into place only once
the manifest is complete, so a failed export never leaves a partial bundle behind.
"""
import dataclasses
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Union

from edgesplit.runtime.bundle.manifest import (MANIFEST_NAME, Manifest, bundle_hash, file_sha256, manifest_to_dict,
                                     parse_manifest)
from edgesplit.runtime.errors import BundleError


@dataclass(frozen=True)
class Bundle:
    root: Path
    manifest: Manifest

    def path_of(self, segment_id: str) -> Path:
        return self.root / self.manifest.segment(segment_id).file

    @property
    def hash(self) -> str:
        return self.manifest.bundle_sha256

    @property
    def wire_hash(self) -> str:
        """The hash device and peer compare: the bundle's own, or for a bundle converted from another
        (same cuts, tensors, exits and weights, checked within 1e-4 by the exporter, e.g. TFLite
        segments made from an ONNX bundle) the source bundle's hash from ``provenance.derived_from``."""
        derived = self.manifest.provenance.get("derived_from")
        source = derived.get("bundle_sha256") if isinstance(derived, dict) else None
        if isinstance(source, str) and len(source) == 64 and all(c in "0123456789abcdef" for c in source):
            return source
        return self.hash


def load_bundle(root: Union[str, Path], verify_files: bool = True) -> Bundle:
    """Load and fully verify a bundle directory; raise BundleError naming what is wrong."""
    root = Path(root)
    manifest_path = root / MANIFEST_NAME
    if not root.is_dir():
        raise BundleError("%s: not a bundle directory (it does not exist or is a file)" % root)
    try:
        text = manifest_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BundleError("%s: no %s in this directory: is it a bundle? Create one with "
                          "'edgesplit split MODEL.onnx --out DIR'" % (root, MANIFEST_NAME)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BundleError("%s: cannot read: %s" % (manifest_path, exc)) from None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:  # deep nesting raises RecursionError
        raise BundleError("%s: not valid JSON (%s): restore the file or re-export the bundle"
                          % (manifest_path, exc)) from None
    try:
        manifest = parse_manifest(data)
    except BundleError as exc:
        raise BundleError("%s: %s" % (root, exc)) from None
    except Exception as exc:  # a manifest is untrusted bytes: what a check missed is still a refusal
        raise BundleError("%s: %s cannot be checked (%s: %s): re-export the bundle"
                          % (root, MANIFEST_NAME, type(exc).__name__, str(exc)[:200])) from None
    if bundle_hash(data) != manifest.bundle_sha256:
        raise BundleError("%s: bundle_sha256 does not match the manifest's contents: the manifest was "
                          "edited after export; re-export the bundle (or restore the original manifest)"
                          % manifest_path)
    if verify_files:
        for index, seg in enumerate(manifest.segments):
            path = root / seg.file
            if not path.is_file():
                raise BundleError("%s: segments[%d] (%s): file %s is missing: copy the whole bundle "
                                  "directory again" % (root, index, seg.id, seg.file))
            if file_sha256(path) != seg.sha256:
                raise BundleError("%s: segments[%d] (%s): file %s does not match its sha256 (corrupted or "
                                  "replaced): copy the bundle again or re-export it"
                                  % (root, index, seg.id, seg.file))
    return Bundle(root, manifest)


def write_bundle(out_dir: Union[str, Path], manifest: Manifest,
                 write_files: Callable[[Path], None], overwrite: bool = False) -> Bundle:
    """Write a bundle atomically.

    ``write_files(tmp_dir)`` writes every segment file named in ``manifest`` into ``tmp_dir``; the
    segments' sha256 fields are filled in here from the written bytes, then the manifest is written
    and the directory renamed into place.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        if not out_dir.is_dir() or any(out_dir.iterdir()):
            raise BundleError("%s already exists: choose another --out or remove it first" % out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".%s.partial-" % out_dir.name, dir=str(out_dir.parent)))
    try:
        write_files(tmp)
        segments = []
        for seg in manifest.segments:
            path = tmp / seg.file
            if not path.is_file():
                raise BundleError("export did not write segment file %s" % seg.file)
            segments.append(dataclasses.replace(seg, sha256=file_sha256(path)))
        manifest = dataclasses.replace(manifest, segments=tuple(segments))
        data = manifest_to_dict(manifest)
        (tmp / MANIFEST_NAME).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        os.chmod(str(tmp), 0o755)
        parse_manifest(data)  # never write a bundle this runtime would refuse
        if out_dir.exists():
            shutil.rmtree(str(out_dir))
        os.replace(str(tmp), str(out_dir))
    except BaseException:
        shutil.rmtree(str(tmp), ignore_errors=True)
        raise
    return load_bundle(out_dir)
