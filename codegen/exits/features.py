"""Features at the exit cuts, computed by onnxruntime from the frozen model (no model source needed).

One session of the user's model with each exit's data tensor added as an output; images go through
it in batches (one at a time if the model's batch dimension is fixed). ``pool`` turns a feature map
into what a head's MLP reads, in numpy, exactly as the head's own AveragePool does in ONNX.
"""
import logging
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

log = logging.getLogger(__name__)

BATCH = 64


class FeatureReader:
    """``batches(images)`` yields (start, [tensor at each cut], final output) per batch."""

    def __init__(self, model, input_name: str, cut_tensors: Sequence[str], output_name: str, dynamic_batch: bool):
        import onnx
        import onnxruntime as ort
        from onnx import helper

        probe = onnx.ModelProto()
        probe.CopyFrom(model)
        listed = {o.name for o in probe.graph.output}
        for name in cut_tensors:
            if name not in listed:
                probe.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
        self.input_name = input_name
        self.names = list(cut_tensors) + [output_name]
        self.batch = BATCH if dynamic_batch else 1

    def batches(self, images: np.ndarray, progress: Optional[Callable] = None
                ) -> Iterator[Tuple[int, List[np.ndarray], np.ndarray]]:
        starts = range(0, len(images), self.batch)
        for start in (progress(starts) if progress else starts):
            outs = self.session.run(self.names, {self.input_name: images[start:start + self.batch]})
            yield start, outs[:-1], outs[-1]


def pool(features: np.ndarray, kernel) -> np.ndarray:
    """(N, C, H, W) -> (N, C * H' * W') by non-overlapping average pooling (kernel = stride, no padding,
    floor), the head's AveragePool; (N, F) passes through. Pooled in float64, returned as float32."""
    if features.ndim == 2:
        return np.asarray(features, dtype=np.float32)
    kh, kw = kernel
    n, c, h, w = features.shape
    oh, ow = h // kh, w // kw
    cropped = np.asarray(features[:, :, :oh * kh, :ow * kw], dtype=np.float64)
    return cropped.reshape(n, c, oh, kh, ow, kw).mean(axis=(3, 5)).reshape(n, -1).astype(np.float32)
