"""Policy and manifest decoders: every mutation of a valid file is either accepted or refused with the
module's own error (PolicyError, BundleError), never another exception. Each leaf of the metadata is
replaced in turn by a hostile value (deep nesting, integers past float range, wrong types)."""
import json
import shutil

import numpy as np
import pytest

from edgesplit.policies_lite import PolicyError, load_policy
from edgesplit.policies_lite.format import META_KEY
from edgesplit.runtime.bundle.store import MANIFEST_NAME, load_bundle
from edgesplit.runtime.errors import BundleError
from support.daemon_process import write_policy

HOSTILE = [10 ** 400, -10 ** 400, 1e308, -1, 0, "x\nforged log line", "", [], {}, None, True,
           [[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]], ["a"] * 10000, "\ud800", 2 ** 63]


def _leaves(node, path=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, path + (key,))
    elif isinstance(node, list) and node:
        for index, value in enumerate(node[:3]):
            yield from _leaves(value, path + (index,))
    yield path


def _replaced(data, path, value):
    if not path:
        return value
    copy = json.loads(json.dumps(data))
    node = copy
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return copy


def _dumps(data):
    # Integers past float range and lone surrogates are what a hostile writer can put in the file.
    return json.dumps(data, ensure_ascii=True)


def test_every_policy_meta_mutation_is_a_policy_error_or_loads(tmp_path):
    good = tmp_path / "good.npz"
    write_policy(good, seed=1)
    with np.load(str(good), allow_pickle=False) as loaded:
        arrays = {k: loaded[k] for k in loaded.files}
    meta = json.loads(bytes(arrays[META_KEY]).decode("utf-8") if arrays[META_KEY].dtype == np.uint8
                      else str(arrays[META_KEY][()]))
    texts = [_dumps(_replaced(meta, path, value)) for path in _leaves(meta) for value in HOSTILE]
    texts += ["[" * 15000, "{" * 15000]
    unexpected = []
    for number, text in enumerate(texts):
        path = tmp_path / ("m%d.npz" % number)
        np.savez(str(path), **dict(arrays, **{META_KEY: np.frombuffer(text.encode("utf-8"), dtype=np.uint8)}))
        try:
            load_policy(path)
        except PolicyError:
            pass
        except Exception as exc:  # noqa: BLE001 - what the test looks for
            unexpected.append("%s: %s: %s" % (text[:120], type(exc).__name__, exc))
        path.unlink()
    assert unexpected == [], unexpected[:5]


@pytest.fixture
def bundle_copy(tmp_path):
    from edgesplit.runtime.default_bundle import default_bundle_path

    root = tmp_path / "bundle"
    shutil.copytree(str(default_bundle_path()), str(root))
    return root


def test_every_manifest_mutation_is_a_bundle_error_or_loads(bundle_copy):
    manifest_path = bundle_copy / MANIFEST_NAME
    manifest = json.loads(manifest_path.read_text())
    texts = [_dumps(_replaced(manifest, path, value)) for path in _leaves(manifest) for value in HOSTILE[:12]]
    texts += ["[" * 15000, '{"a":' + "{" * 15000]
    unexpected = []
    for text in texts:
        manifest_path.write_text(text)
        try:
            load_bundle(bundle_copy, verify_files=False)
        except BundleError:
            pass
        except Exception as exc:  # noqa: BLE001 - what the test looks for
            unexpected.append("%s: %s: %s" % (text[:120], type(exc).__name__, exc))
    assert unexpected == [], (len(unexpected), unexpected[:5])
