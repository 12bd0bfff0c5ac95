"""A TFLite device offloads to an onnxruntime peer over a real ZeroMQ socket.

The two bundles have different hashes (different segment files) but the TFLite one was converted
from the ONNX one and checked within 1e-4, and records that in ``provenance.derived_from``: it
presents the source's hash on the wire (``Bundle.wire_hash``), which the peer accepts.
"""
import numpy as np
import pytest
from support.tflite_twin import needs_tflite

from edgesplit.runtime.executor.executor import Executor
from edgesplit.runtime.peer.background import BackgroundPeer
from edgesplit.runtime.transport.client import PeerClient

pytestmark = needs_tflite


@pytest.fixture(scope="module")
def onnx_peer(onnx_bundle):
    with BackgroundPeer(Executor(onnx_bundle)) as peer:
        yield peer


@pytest.mark.parametrize("cut", [0, 1, 2])
def test_tflite_device_onnxruntime_peer_across_the_wire(onnx_peer, onnx_bundle, tflite_bundle, images, cut):
    device = Executor(tflite_bundle)
    local = Executor(onnx_bundle).run(images[:4], use_exits=False)
    shipped = device.run(images[:4], use_exits=False, stop_at_cut=cut)
    with PeerClient(onnx_peer.endpoint, tflite_bundle.wire_hash) as client:
        outcome = client.offload(cut, shipped.live, deadline_s=10.0, use_exits=False)
    assert outcome.ok, outcome.message
    assert outcome.exit_id == local.exit_id
    np.testing.assert_allclose(outcome.output, local.output, atol=1e-4, rtol=0)


def test_the_peer_takes_early_exits_on_tensors_from_tflite(onnx_peer, onnx_bundle, tflite_bundle, images):
    device, local = Executor(tflite_bundle), Executor(onnx_bundle)
    with PeerClient(onnx_peer.endpoint, tflite_bundle.wire_hash) as client:
        for image in images[:8]:
            shipped = device.run(image[None], stop_at_cut=0)
            outcome = client.offload(0, shipped.live, deadline_s=10.0)
            want = local.run(image[None])
            assert outcome.ok and outcome.exit_id == want.exit_id
            np.testing.assert_allclose(outcome.output, want.output, atol=1e-4, rtol=0)


def test_the_twins_own_hash_is_refused(onnx_peer, tflite_bundle, images):
    """Why the wire hash exists: the file-level hash differs, and a peer refuses unknown bundles."""
    with PeerClient(onnx_peer.endpoint, tflite_bundle.hash) as client:
        outcome = client.offload(0, {"image": images[:1]}, deadline_s=10.0)
    assert outcome.status == "refused" and outcome.peer_status == "bundle_mismatch"
