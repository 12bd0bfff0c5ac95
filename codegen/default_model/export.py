"""Export the trained branchy CNN to ONNX and write the bundle with the splitter.

The main branch is exported once (input ``image``, output ``logits``) with the legacy TorchScript
exporter, which keeps stable names: the block outputs are returned as extra graph outputs during
export so they get the names ``block1_out`` and ``block2_out``, then those extra outputs are dropped
from the graph. Each exit head is its own ONNX model whose single input carries the name of the
main-graph tensor it reads; ``split_model`` finds the cut there and records the exit. Opset 13 (the
oldest onnxruntime on the boards, 1.10, loads opsets up to 15) with a dynamic batch dimension.
"""
import logging
import warnings
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch

from edgesplit.codegen.default_model.model import (BLOCK_OUTPUT_NAMES, HEAD_OUTPUT_NAMES, INPUT_NAME, OUTPUT_NAME,
                                         BranchyCNN, MainBranchWithTaps)
from edgesplit.codegen.graph import ModelError

log = logging.getLogger(__name__)

OPSET = 13
BATCH_AXIS = {0: "batch"}
MATCH_TOLERANCE = 1e-4


def _export(module: torch.nn.Module, example: torch.Tensor, path: Path, input_name: str,
            output_names: Sequence[str]) -> None:
    with warnings.catch_warnings():
        # The legacy exporter is chosen on purpose (stable names, no onnxscript); silence its notices.
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), str(path), input_names=[input_name], output_names=list(output_names),
                          dynamic_axes={name: BATCH_AXIS for name in [input_name, *output_names]},
                          opset_version=OPSET, do_constant_folding=True, dynamo=False)


def export_main(model: BranchyCNN, path: Path) -> Path:
    """The main branch as one ONNX file, with the block outputs named inside the graph."""
    import onnx

    model.eval()
    _export(MainBranchWithTaps(model), torch.zeros(1, 1, 28, 28), path, INPUT_NAME,
            (OUTPUT_NAME,) + BLOCK_OUTPUT_NAMES)
    graph = onnx.load(str(path))
    taps = [o for o in graph.graph.output if o.name in BLOCK_OUTPUT_NAMES]
    for tap in taps:
        graph.graph.output.remove(tap)
    produced = {name for node in graph.graph.node for name in node.output}
    missing = [name for name in BLOCK_OUTPUT_NAMES if name not in produced]
    if missing or [o.name for o in graph.graph.output] != [OUTPUT_NAME]:
        raise ModelError("%s: export lost the named block outputs %s or the output %r"
                         % (path, missing, OUTPUT_NAME))
    onnx.checker.check_model(graph)
    onnx.save(graph, str(path))
    return path


def export_heads(model: BranchyCNN, out_dir: Path) -> List[Path]:
    """Each exit head as its own ONNX file whose input is named after the block output it reads."""
    model.eval()
    examples = _block_outputs(model, torch.zeros(1, 1, 28, 28))
    paths = []
    for index, (head, example) in enumerate(zip(model.heads, examples)):
        path = out_dir / ("exit%d_head.onnx" % index)
        _export(head, example, path, BLOCK_OUTPUT_NAMES[index], (HEAD_OUTPUT_NAMES[index],))
        paths.append(path)
    return paths


def _block_outputs(model: BranchyCNN, image: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        b1, b2, _ = model.trunk(image)
    return b1, b2


def torch_exit_logits(model: BranchyCNN, images: np.ndarray) -> List[np.ndarray]:
    with torch.no_grad():
        return [out.numpy() for out in model(torch.from_numpy(images))]


def bundle_exit_logits(bundle, images: np.ndarray) -> List[np.ndarray]:
    """Each exit's logits from the bundle's own segments: heads on their cut's tensors, and the chain."""
    from edgesplit.runtime.executor.executor import Executor

    executor = Executor(bundle, threads=1)
    manifest = bundle.manifest
    env: Dict[str, np.ndarray] = {manifest.inputs[0].name: images}
    for segment in manifest.main:
        env.update(executor.runners[segment.id].run(env))
    outputs = []
    for ex in manifest.exits:
        if ex.head is None:
            outputs.append(env[manifest.outputs[0].name])
        else:
            produced = executor.runners[ex.head].run(env)
            outputs.append(produced[manifest.segment(ex.head).outputs[0].name])
    return outputs


def check_bundle_matches(bundle, model: BranchyCNN, images: np.ndarray) -> float:
    """Largest |bundle - torch| over every exit's logits; raise ModelError above MATCH_TOLERANCE."""
    worst = 0.0
    for index, (got, want) in enumerate(zip(bundle_exit_logits(bundle, images), torch_exit_logits(model, images))):
        diff = float(np.abs(got - want).max())
        worst = max(worst, diff)
        if diff > MATCH_TOLERANCE:
            raise ModelError("%s: exit %d of the exported bundle differs from the torch model by %.3g (> %g)"
                             % (bundle.root, index, diff, MATCH_TOLERANCE))
    return worst
