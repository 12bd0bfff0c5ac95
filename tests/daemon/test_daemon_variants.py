"""Arms on the board: a real daemon serving three real variants of one task (fp32, an int8 copy made with
onnxruntime's quantisation, a smaller model), choosing per request with LinUCB, learning from late ratings
through the local API, recording each task's arm in the trace, and resuming its learner after a restart."""
import json
import sqlite3
import time

import pytest

from support.daemon_process import heldout

pytest.importorskip("onnx")  # quantising the int8 variant is a workstation step
pytestmark = pytest.mark.workstation


@pytest.fixture(scope="module")
def variants(tmp_path_factory):
    from edgesplit.codegen.variants import build_default_variants

    built = build_default_variants(tmp_path_factory.mktemp("variants"))
    return {name: str(bundle.root) for name, bundle in built.items() if name in ("fp32", "int8", "small")}


def _config(variants, state, unit_s=0.01):
    model = 'selector = "linucb"\nvariants = [%s]\n' % ", ".join('"%s"' % variants[n] for n in ("fp32", "int8", "small"))
    return model, '[linucb]\nstate = "%s"\ndelay_unit_s = %r\n' % (state, unit_s)


def _serve_and_rate(daemon, count, best, offset=0):
    """Submit ``count`` tasks; rate each one a little later: 1 on arm ``best``, 0 elsewhere."""
    arms = []
    with daemon.client() as api:
        for x in heldout(offset + count)[offset:]:
            answer = api.submit(x[None], deadline_ms=2000)
            assert answer.ok, answer
            arms.append((answer.task_id, answer.arm))
            time.sleep(0.02)  # the rating comes late (2 delay units), as a person's would
            assert api.feedback(answer.task_id, rating=1.0 if answer.arm == best else 0.0).ok
        status = api.status()
    return arms, status


def _trace_arms(db):
    conn = sqlite3.connect(str(db))
    try:
        return dict(conn.execute("SELECT task_id, arm FROM tasks"))
    finally:
        conn.close()


def test_the_selector_learns_the_best_rated_variant_records_arms_and_resumes(make_daemon, variants, tmp_path):
    state = tmp_path / "linucb.json"
    model, extra = _config(variants, state)
    daemon = make_daemon(extra, model=model).start()
    arms, status = _serve_and_rate(daemon, 60, best="small")
    assert daemon.stop() == 0

    chosen = [arm for _, arm in arms]
    assert set(chosen) <= {"fp32", "int8", "small"} and len(set(chosen[:15])) >= 2, chosen  # it explored
    assert chosen[-20:].count("small") >= 16, chosen  # then settled on the best-rated variant
    selector = status["selector"]
    assert selector["ratings"] == 60
    by_name = {arm["name"]: arm for arm in selector["arms"]}
    assert max(by_name, key=lambda n: by_name[n]["estimate"]) == "small", by_name
    assert sum(a["chosen"] for a in by_name.values()) == 60 and sum(a["rated"] for a in by_name.values()) == 60
    assert _trace_arms(daemon.traces) == dict(arms)  # every task's arm is in its trace row

    saved = json.loads(state.read_text())
    assert saved["n_feedback"] == 60
    # Restarted with the same state file: the learner resumes and keeps choosing the best arm at once.
    again = make_daemon(extra, model=model).start()
    arms_after, status_after = _serve_and_rate(again, 10, best="small", offset=60)
    assert again.stop() == 0
    assert status_after["selector"]["ratings"] == 70
    assert [arm for _, arm in arms_after].count("small") >= 8, arms_after


def test_a_damaged_learner_state_stops_the_daemon_with_a_clear_error(make_daemon, variants, tmp_path):
    state = tmp_path / "linucb.json"
    state.write_text('{"format": "edgesplit.linucb-state", "version": 1')
    model, extra = _config(variants, state)
    daemon = make_daemon(extra, model=model)
    with pytest.raises(RuntimeError, match="linucb.json: learner state is not valid JSON"):
        daemon.start()


@pytest.mark.parametrize("pair,message", [
    (("fp32", "tiny"), "tiny .* has inputs .* but fp32 has .*: variants must be the same task"),
    (("tiny", "tiny2"), "tiny: no measured accuracy"),
])
def test_variants_that_cannot_be_compared_are_refused(make_daemon, variants, tmp_path, pair, message):
    from support.tiny_bundle import write_tiny_bundle

    paths = dict(variants, tiny=str(write_tiny_bundle(tmp_path / "tiny").root),
                 tiny2=str(write_tiny_bundle(tmp_path / "tiny2", seed=1).root))
    model = 'selector = "linucb"\nvariants = ["%s", "%s"]\n' % (paths[pair[0]], paths[pair[1]])
    daemon = make_daemon('[linucb]\nstate = ""\n', model=model)
    with pytest.raises(RuntimeError, match=message):
        daemon.start()
