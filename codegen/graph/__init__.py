"""Graph analysis for splitting: the data DAG of an ONNX model, its valid cut points, shapes, MACs."""
from edgesplit.codegen.graph.cuts import CutPoint, ModelCuts, analyse_model, resolve_cut_ids, select_auto
from edgesplit.codegen.graph.errors import CutError, ModelError
from edgesplit.codegen.graph.loading import default_opset, load_model

__all__ = ["CutPoint", "ModelCuts", "analyse_model", "resolve_cut_ids", "select_auto", "CutError",
           "ModelError", "default_opset", "load_model"]
