"""Property tests: a damaged policy file is refused with a PolicyError, never a crash.

Each test damages one layer of the format (the JSON metadata, the arrays, the raw bytes) and
accepts exactly two outcomes: a PolicyError, or a policy that loads and decides cleanly.
"""
import copy
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edgesplit.policies_lite import PolicyError, content_id, edgeml_decoder, load_policy, save_policy, task_choice_decoder
from support.plite_factory import FEATURES, mlp_layers

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 300) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=8)


def _base(tmp_dir, decoder):
    rng = np.random.default_rng(3)
    path = tmp_dir / "base.npz"
    n_out = 5
    save_policy(path, features=FEATURES, layers=mlp_layers(rng, [8, 6, n_out]), activations=["tanh", "identity"],
                decoder=decoder, provenance={"traces": ["a.db"], "algorithm": "test"})
    with np.load(str(path), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return json.loads(str(arrays.pop("meta")[()])), arrays


@pytest.fixture(scope="module", params=["edgeml", "task_choice"])
def base(request, tmp_path_factory):
    decoder = edgeml_decoder(3, 4) if request.param == "edgeml" else task_choice_decoder(
        [(0, None), (1, 0), (1, 1), (2, 3), (3, None)])
    return _base(tmp_path_factory.mktemp("base"), decoder)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, prefix + (i,))


def _mutate(meta, path, action, value):
    meta = copy.deepcopy(meta)
    if not path:
        return value if action == "replace" else meta
    parent = meta
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    if action == "delete":
        del parent[last]
    elif action == "replace":
        parent[last] = value
    elif isinstance(parent, dict):
        parent["unknown_" + str(last)] = value
    else:
        parent.insert(last, value)
    return meta


def _write(path, meta_text, arrays):
    with open(str(path), "wb") as handle:
        np.savez(handle, meta=np.array(meta_text), **arrays)


def _load_and_use(path):
    """Load; if that works, deciding on a few inputs must work too (or raise PolicyError)."""
    try:
        policy = load_policy(path)
    except PolicyError as exc:
        assert str(exc)  # has a message
        return False
    for x in (np.zeros(len(policy.features)), np.linspace(-3, 3, len(policy.features))):
        try:
            policy.decide(x)
        except PolicyError:
            pass
    return True


@SETTINGS
@given(data=st.data(), action=st.sampled_from(["delete", "replace", "insert"]), value=json_values,
       restamp=st.booleans())
def test_corrupt_metadata_gives_policy_error(tmp_path, base, data, action, value, restamp):
    meta, arrays = base
    path_in_meta = data.draw(st.sampled_from(list(_paths(meta))))
    bad = _mutate(meta, path_in_meta, action, value)
    if restamp and isinstance(bad, dict) and isinstance(bad.get("provenance"), dict):
        bad["provenance"]["policy_id"] = content_id(bad, arrays)  # only validation stands in the way
    path = tmp_path / "bad.npz"
    _write(path, json.dumps(bad), arrays)
    _load_and_use(path)


@SETTINGS
@given(data=st.data(), action=st.sampled_from(["replace", "delete", "extra"]),
       replacement=hnp.arrays(dtype=st.sampled_from([np.float64, np.float32, np.int64, np.bool_, np.complex64,
                                                     np.dtype("U3"), np.float16]),
                              shape=hnp.array_shapes(min_dims=0, max_dims=3, max_side=9)))
def test_corrupt_arrays_give_policy_error(tmp_path, base, data, action, replacement):
    meta, arrays = base
    arrays = dict(arrays)
    name = data.draw(st.sampled_from(sorted(arrays)))
    if action == "replace":
        arrays[name] = replacement
    elif action == "delete":
        del arrays[name]
    else:
        arrays["extra"] = replacement
    meta = copy.deepcopy(meta)
    meta["provenance"]["policy_id"] = content_id(meta, arrays)
    path = tmp_path / "bad.npz"
    _write(path, json.dumps(meta), arrays)
    _load_and_use(path)


@SETTINGS
@given(data=st.data())
def test_damaged_bytes_give_policy_error(tmp_path, base, data):
    meta, arrays = base
    path = tmp_path / "bad.npz"
    _write(path, json.dumps(meta), arrays)
    raw = bytearray(path.read_bytes())
    how = data.draw(st.sampled_from(["flip", "truncate", "garbage"]))
    if how == "flip":
        for _ in range(data.draw(st.integers(1, 8))):
            raw[data.draw(st.integers(0, len(raw) - 1))] ^= data.draw(st.integers(1, 255))
    elif how == "truncate":
        raw = raw[:data.draw(st.integers(0, len(raw) - 1))]
    else:
        raw = bytearray(data.draw(st.binary(max_size=300)))
    path.write_bytes(bytes(raw))
    _load_and_use(path)


def test_non_finite_and_non_json_metadata(tmp_path, base):
    meta, arrays = base
    text = json.dumps(meta).replace('"mean": [', '"mean": [NaN, ', 1)
    _write(tmp_path / "nan.npz", text, arrays)
    with pytest.raises(PolicyError, match="not valid JSON"):
        load_policy(tmp_path / "nan.npz")
    nan_arrays = dict(arrays, W0=np.full_like(arrays["W0"], np.nan))
    meta2 = copy.deepcopy(meta)
    meta2["provenance"]["policy_id"] = content_id(meta2, nan_arrays)
    _write(tmp_path / "nanw.npz", json.dumps(meta2), nan_arrays)
    with pytest.raises(PolicyError, match="'W0' holds NaN"):
        load_policy(tmp_path / "nanw.npz")


def test_named_field_errors(tmp_path, base):
    meta, arrays = base
    cases = [
        (("activations", 0), "swish", "activations\\[0\\].*swish"),
        (("kind",), "tree", "meta.kind.*tree"),
        (("format_version",), 99, "format_version.*newer"),
        (("decoder", "type"), "bandit", "decoder.type"),
        (("normalisation", "std", 2), 0.0, "normalisation.std\\[2\\].*> 0"),
        (("layer_sizes", 1), 7, "W0.*shape"),
    ]
    for path_in_meta, value, pattern in cases:
        bad = _mutate(meta, path_in_meta, "replace", value)
        bad["provenance"]["policy_id"] = content_id(bad, arrays)
        _write(tmp_path / "bad.npz", json.dumps(bad), arrays)
        with pytest.raises(PolicyError, match=pattern):
            load_policy(tmp_path / "bad.npz")


def test_edited_weights_are_detected(tmp_path, base):
    meta, arrays = base
    arrays = dict(arrays, b0=arrays["b0"] + 1.0)
    _write(tmp_path / "edited.npz", json.dumps(meta), arrays)
    with pytest.raises(PolicyError, match="policy_id does not match"):
        load_policy(tmp_path / "edited.npz")


def test_not_a_policy(tmp_path):
    for name, content in (("missing.npz", None), ("text.npz", b"hello"), ("empty.npz", b"")):
        path = tmp_path / name
        if content is not None:
            path.write_bytes(content)
        with pytest.raises(PolicyError, match=name):
            load_policy(path)
    np.save(str(tmp_path / "single.npy"), np.zeros(3))
    with pytest.raises(PolicyError, match="single .npy"):
        load_policy(tmp_path / "single.npy")
    with pytest.raises(PolicyError, match="directory"):
        load_policy(tmp_path)
    np.savez(str(tmp_path / "nometa.npz"), W0=np.zeros(3))
    with pytest.raises(PolicyError, match="no 'meta'"):
        load_policy(tmp_path / "nometa.npz")
    np.savez(str(tmp_path / "pickled.npz"), meta=np.array([{"a": 1}], dtype=object))
    with pytest.raises(PolicyError, match="pickled.npz"):
        load_policy(tmp_path / "pickled.npz")


@pytest.mark.parametrize("content, message", [
    (b"PKG-INFO: a text file\n", "not a policy .npz"),          # starts "PK" but is no zip
    (b"PK\x03", "truncated to 3 bytes"),                        # a policy cut after 3 bytes
    (b"PK", "truncated to 2 bytes"),
    (b"PK\x07\x08" + b"\0" * 40, "not a policy .npz"),            # a zip's data descriptor, never a file's start
])
def test_foreign_or_cut_files_are_named_and_never_unpickled(tmp_path, content, message):
    # numpy reads anything that is not a zip or .npy by its first bytes as a pickle and advises loading it unsafely;
    # the loader refuses it by those bytes, with advice that fits a policy file.
    path = tmp_path / "p.npz"
    path.write_bytes(content)
    with pytest.raises(PolicyError, match=message) as caught:
        load_policy(path)
    assert "allow_pickle" not in str(caught.value) and "unsafely" not in str(caught.value)


def test_object_arrays_are_refused_without_numpys_pickle_advice(tmp_path, base):
    meta, arrays = base
    npy = tmp_path / "objects.npz"  # an object .npy renamed .npz
    np.save(str(tmp_path / "objects.npy"), np.array([{"a": 1}], dtype=object), allow_pickle=True)
    npy.write_bytes((tmp_path / "objects.npy").read_bytes())
    with pytest.raises(PolicyError, match="a single .npy array, not a policy .npz"):
        load_policy(npy)
    member = tmp_path / "member.npz"  # a zip whose one member is an object array
    np.savez(str(member), meta=np.array(json.dumps(meta)), W0=np.array([object()], dtype=object))
    with pytest.raises(PolicyError, match="holds a Python object array") as caught:
        load_policy(member)
    assert "allow_pickle" not in str(caught.value) and "unsafely" not in str(caught.value)
