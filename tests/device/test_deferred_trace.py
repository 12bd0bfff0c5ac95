"""DeviceLoop's deferred trace row (what the daemon writes while the answer travels), on a real
pipeline: the embedded bundle, onnxruntime sessions and a real SQLite trace store."""
import sqlite3

from support.daemon_process import heldout
from edgesplit.runtime.bundle.store import load_bundle
from edgesplit.runtime.controller.reward import Bounds
from edgesplit.runtime.controller.strategies import local_only
from edgesplit.runtime.default_bundle import default_bundle_path
from edgesplit.runtime.device.pipeline import Pipeline, PipelineSettings, StoreSettings


def _pipeline(path):
    bundle = load_bundle(default_bundle_path())
    side = [e.threshold for e in bundle.manifest.exits if e.head is not None]
    return Pipeline(bundle, local_only(len(side), len(bundle.manifest.main), side), Bounds(1.0, float("inf")),
                    PipelineSettings(deadline_s=1.0, store=StoreSettings(str(path), batch_size=4)))


def _rows(path):
    with sqlite3.connect(str(path)) as db:
        return db.execute("SELECT task_id, exit, result FROM tasks ORDER BY seq").fetchall()


def test_a_deferred_row_is_written_on_request_before_the_next_task_and_at_finish(tmp_path):
    path = tmp_path / "t.db"
    images = heldout(3)
    pipeline = _pipeline(path)
    loop = pipeline.loop
    first = loop.process(0, images[0:1], defer_trace=True)
    pipeline.store.flush()
    assert _rows(path) == []  # not yet: the daemon answers first
    loop.write_deferred_trace()
    loop.write_deferred_trace()  # nothing more to write: no second row
    pipeline.store.flush()
    assert _rows(path) == [(0, first.exit_id, first.result)]
    second = loop.process(1, images[1:2], defer_trace=True)
    third = loop.process(2, images[2:3], defer_trace=True)  # writes task 1's row first, in order
    pipeline.store.flush()
    assert _rows(path)[-1] == (1, second.exit_id, second.result)
    loop.finish()
    pipeline.close()
    assert _rows(path) == [(0, first.exit_id, first.result), (1, second.exit_id, second.result),
                           (2, third.exit_id, third.result)]
    with sqlite3.connect(str(path)) as db:
        assert db.execute("SELECT count(*) FROM transitions").fetchone()[0] == 3
