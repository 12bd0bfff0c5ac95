"""The variant selector in-process: contexts from real variant bundles, ratings matched to the tasks it chose,
its learner state saved per rating and refused when the variants change."""
import numpy as np
import pytest

from edgesplit.policies_lite.linucb_state import load_state
from edgesplit.runtime.default_bundle import default_bundle_path, load_heldout
from edgesplit.runtime.selection.selector import FEATURES, Arm, SelectorError, VariantSelector
from edgesplit.runtime.selection.variants import load_variants
from edgesplit.runtime.selection.wiring import learner_config


class Section:
    alpha, delta, lambda_eta, lambda_v_scale, lambda_v_power, delay_unit_s = 1.5, 0.1, 0.4, 5.0, 2.0, 1.0


@pytest.fixture(scope="module")
def variants(tmp_path_factory):
    from edgesplit.codegen.variants import no_exit_bundle, truncate_bundle
    from edgesplit.runtime.bundle.store import load_bundle

    out = tmp_path_factory.mktemp("variants")
    images, labels = load_heldout()
    source = load_bundle(default_bundle_path())
    truncate_bundle(source, out / "small", images[:100], labels[:100])
    no_exit_bundle(source, out / "noexit", images[:100], labels[:100])
    return load_variants(["default", str(out / "small"), str(out / "noexit")], str(default_bundle_path()))


def _selector(variants, state=None, now=None):
    arms = [Arm(v, loop=None, latency_s=0.001 * (i + 1)) for i, v in enumerate(variants)]
    clock = now or (lambda: 0.0)
    return VariantSelector(arms, learner_config(Section, [v.name for v in variants]), latency_bound_s=0.1,
                           state_path=state, clock=clock, seed=0)


def test_variants_carry_their_measured_figures(variants):
    by_name = {v.name: v for v in variants}
    assert set(by_name) == {"default", "small", "noexit"}
    assert by_name["small"].macs < by_name["default"].macs == by_name["noexit"].macs
    assert by_name["small"].size_bytes < by_name["default"].size_bytes
    assert 0.5 < by_name["small"].accuracy < by_name["noexit"].accuracy <= 1.0


def test_contexts_hold_the_variant_features_and_a_one_hot_arm(variants):
    contexts = _selector(variants).contexts()
    assert contexts.shape == (3, len(FEATURES) + 3)
    np.testing.assert_array_equal(contexts[:, len(FEATURES):], np.eye(3))
    assert list(contexts[:, 2]) == pytest.approx([0.01, 0.02, 0.03])  # latency / bound
    assert contexts[:, 0].tolist() == [1.0, 1.0, 1.0]


def test_ratings_update_the_learner_only_for_tasks_it_chose_and_are_saved(variants, tmp_path):
    state = tmp_path / "linucb.json"
    now = [0.0]
    selector = _selector(variants, str(state), now=lambda: now[0])
    arm = selector.choose(7)
    assert not selector.feedback(7, 1.0), "a rating before the answer went out cannot be timed"
    arm = selector.choose(8)
    selector.answered(8, service_s=0.002)
    now[0] = 3.0
    assert selector.feedback(8, 0.75)
    assert not selector.feedback(8, 0.75) and not selector.feedback(99, 1.0)
    saved = load_state(state)
    assert saved.n_feedback == 1 and saved.rated == {arm.name: 1}
    described = selector.describe()
    assert described["ratings"] == 1 and described["unmatched_ratings"] == 3
    assert {a["name"] for a in described["arms"]} == {"default", "small", "noexit"}
    resumed = _selector(variants, str(state))
    np.testing.assert_array_equal(resumed.learner.theta, selector.learner.theta)


def test_a_state_saved_for_other_variants_is_refused(variants, tmp_path):
    state = tmp_path / "linucb.json"
    selector = _selector(variants, str(state))
    selector.choose(1)
    selector.answered(1, 0.001)
    selector.feedback(1, 1.0)
    with pytest.raises(SelectorError, match="the variants or the \\[linucb\\] values changed"):
        _selector(variants[:2], str(state))
