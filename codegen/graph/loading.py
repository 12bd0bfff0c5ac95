"""Loading an ONNX model with errors that say what is wrong with the file."""
import logging
from pathlib import Path
from typing import Union

from edgesplit.codegen.graph.errors import ModelError

log = logging.getLogger(__name__)


def load_model(path: Union[str, Path]):
    """Read and sanity-check an ONNX model file; raise ModelError naming the file and the problem."""
    import onnx
    from google.protobuf.message import DecodeError

    path = Path(path)
    if not path.exists():
        raise ModelError("%s: no such file" % path)
    if not path.is_file():
        raise ModelError("%s: not a file (pass an .onnx model file)" % path)
    try:
        model = onnx.load(str(path))
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise ModelError("%s: not an ONNX model (cannot parse it: %s); export the model to ONNX first"
                         % (path, exc)) from None
    except OSError as exc:
        raise ModelError("%s: cannot read: %s" % (path, exc)) from None
    check_supported(model, str(path))
    return model


BOARD_MAX_OPSET = 21  # the newest ai.onnx opset onnxruntime 1.19 loads (JetPack 4's, the oldest board runtime)


def check_supported(model, where: str) -> None:
    """Refuse models the splitter cannot split, saying why; warn about an opset the oldest boards cannot load."""
    graph = model.graph
    opset = next((int(e.version) for e in model.opset_import if e.domain in ("", "ai.onnx")), None)
    if opset is not None and opset > BOARD_MAX_OPSET:
        log.warning("%s: opset %d is newer than onnxruntime 1.19 loads (up to %d; JetPack 4's, the oldest board "
                    "runtime edgesplit supports): its segments will not load on such a board. Export the model at "
                    "opset 17 to %d (torch.onnx.export(..., opset_version=17)) unless every board has a newer "
                    "onnxruntime", where, opset, BOARD_MAX_OPSET, BOARD_MAX_OPSET)
    if not graph.node:
        raise ModelError("%s: not an ONNX model, or an empty graph (no nodes); export the model to ONNX first"
                         % where)
    if len(graph.output) != 1:
        raise ModelError("%s: the model has %d outputs (%s); only single-output classification models are "
                         "supported: export the model with one output"
                         % (where, len(graph.output), ", ".join(o.name for o in graph.output)))
    initializers = {t.name for t in graph.initializer}
    if not [i for i in graph.input if i.name not in initializers]:
        raise ModelError("%s: the model has no inputs (every graph input is an initializer)" % where)


def default_opset(model) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    raise ModelError("model imports no default-domain (ai.onnx) opset")
