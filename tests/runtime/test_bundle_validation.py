"""A bundle is accepted whole or refused whole, with an error that names the field or file."""
import json

import pytest

from edgesplit.runtime.bundle.manifest import MANIFEST_NAME, bundle_hash, parse_manifest
from edgesplit.runtime.bundle.store import load_bundle
from edgesplit.runtime.errors import BundleError


def read_manifest(root):
    return json.loads((root / MANIFEST_NAME).read_text())


def write_manifest(root, data, rehash=True):
    if rehash:
        data["bundle_sha256"] = bundle_hash(data)
    (root / MANIFEST_NAME).write_text(json.dumps(data))


def test_default_bundle_loads_and_chains(bundle_copy):
    bundle = load_bundle(bundle_copy)
    manifest = bundle.manifest
    assert len(manifest.cuts) == len(manifest.main) + 1
    assert manifest.exits[-1].head is None
    assert len([e for e in manifest.exits if e.head]) >= 2


def test_corrupted_segment_is_refused(bundle_copy):
    seg_file = bundle_copy / read_manifest(bundle_copy)["segments"][1]["file"]
    blob = bytearray(seg_file.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    seg_file.write_bytes(bytes(blob))
    with pytest.raises(BundleError, match=r"segments\[1\].*does not match its sha256"):
        load_bundle(bundle_copy)


def test_missing_segment_is_refused(bundle_copy):
    seg = read_manifest(bundle_copy)["segments"][0]
    (bundle_copy / seg["file"]).unlink()
    with pytest.raises(BundleError, match=r"segments\[0\].*%s is missing" % seg["file"]):
        load_bundle(bundle_copy)


def test_edited_manifest_is_refused(bundle_copy):
    data = read_manifest(bundle_copy)
    data["exits"][0]["threshold"] = 0.99
    write_manifest(bundle_copy, data, rehash=False)
    with pytest.raises(BundleError, match="bundle_sha256 does not match"):
        load_bundle(bundle_copy)


def test_manifest_that_is_not_json_is_refused(bundle_copy):
    (bundle_copy / MANIFEST_NAME).write_text('{"format": "edgesplit-bundle",')
    with pytest.raises(BundleError, match="not valid JSON"):
        load_bundle(bundle_copy)


def test_directory_without_manifest_is_refused(tmp_path):
    with pytest.raises(BundleError, match="no manifest.json"):
        load_bundle(tmp_path)


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["segments"][0].update(sha256="abc"), r"segments\[0\]\.sha256: expected"),
    (lambda d: d["segments"][0].update(backend="tensorflow"), r"segments\[0\]\.backend: expected one of"),
    (lambda d: d["segments"][0].update(file="../../etc/passwd"), r"segments\[0\]\.file"),
    (lambda d: d["segments"][0]["inputs"][0].update(dtype="complex64"), r"segments\[0\]\.inputs\[0\]\.dtype"),
    (lambda d: d["cuts"][1].update(bytes_per_sample=-1), r"cuts\[1\]\.bytes_per_sample"),
    (lambda d: d["exits"][0].update(threshold=1.5), r"exits\[0\]\.threshold: expected a number in \[0, 1\]"),
    (lambda d: d["exits"][0].update(head="nope"), r"exits\[0\]\.head"),
    (lambda d: d.update(colour="blue"), r"unknown field 'colour'"),
    (lambda d: d.pop("cuts"), r"missing field 'cuts'"),
    (lambda d: d["cuts"].pop(), r"cuts: expected \d+ cuts"),
    (lambda d: d.update(format_version=99), r"newer than this runtime"),
    (lambda d: d.update(tree_blocks=[{"id": "t0"}]), r"tree_blocks"),
])
def test_bad_manifest_fields_are_named(bundle_copy, edit, message):
    data = read_manifest(bundle_copy)
    edit(data)
    with pytest.raises(BundleError, match=message):
        parse_manifest(data)
    write_manifest(bundle_copy, data)
    with pytest.raises(BundleError, match=message):
        load_bundle(bundle_copy)
