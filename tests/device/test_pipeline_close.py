"""``Pipeline.close`` closes every part even when one fails: a peer client left open keeps probing its peer."""
import threading

import pytest

from edgesplit.runtime.bundle.store import load_bundle
from edgesplit.runtime.controller.reward import Bounds
from edgesplit.runtime.controller.strategies import local_only
from edgesplit.runtime.default_bundle import default_bundle_path
from edgesplit.runtime.device.pipeline import Pipeline, PipelineSettings, StoreSettings
from edgesplit.runtime.traces.errors import TraceError


def _probe_threads():
    return [t for t in threading.enumerate() if t.name == "edgesplit-probe" and t.is_alive()]


def test_a_store_that_fails_to_close_leaves_no_probe_thread(peers, free_port, tmp_path):
    peers(free_port)
    bundle = load_bundle(default_bundle_path())
    side = [e.threshold for e in bundle.manifest.exits if e.head is not None]
    pipeline = Pipeline(bundle, local_only(len(side), len(bundle.manifest.main), side), Bounds(1.0, float("inf")),
                        PipelineSettings(deadline_s=1.0, peer="tcp://127.0.0.1:%d" % free_port,
                                         store=StoreSettings(str(tmp_path / "t.db"), writer="thread")))
    assert _probe_threads()
    real_close = pipeline.store.close

    def failing_close():
        real_close()
        raise TraceError("t.db: disk gone")

    pipeline.store.close = failing_close
    with pytest.raises(TraceError, match="disk gone"):
        pipeline.close()
    assert not _probe_threads()
    assert pipeline.client is None and pipeline.store is None
