"""What splitting costs at run time: chained segments vs the monolithic model, at batch 1.

Measures, in one run, with the same onnxruntime session options on both sides:

(a) ResNet-50 (the model-zoo graph in the onnx wheel) as one session vs split at every valid cut
    (40 segments) and at the "auto" cuts (5 segments), run through the Executor without exits:
    ratio chained / monolithic (target <= 1.03); the auto cuts again written without the splitter's
    layout anchors (codegen/layout_anchor.py), to show what they save. A diagnostic pair repeats the all-cuts chain and
    the monolithic model with onnxruntime's NCHWc layout transformer off: on x86 each segment
    converts its activations NCHW -> NCHWc -> NCHW at its boundaries (ReorderInput/ReorderOutput),
    which one monolithic session does once;
(b) a small CNN built here (MNIST-sized, 10 conv3x3+relu layers, ~4 M MACs) split into 1 to 13
    segments at cuts after each Relu (so no Conv+Relu fusion is lost): the cost of one extra
    segment in microseconds (target <= 10 us): the median over rounds of the slope of time against
    segment count within each round; the same with every valid cut (23 segments, Conv and Relu
    separated) for comparison.

Configurations are interleaved (round-robin, rotating the order each round, one short sample per
configuration per round), so drift and other load on the machine hit every configuration alike.
Reported per configuration: median and minimum over the rounds; the ratios are the median of the
per-round ratios (both terms measured back to back) and the ratio of the minimums (the least
disturbed samples). Prints one JSON document. Needs the codegen extra (onnx).

    .venv/bin/python bench/segment_overhead.py [--rounds 30] [--threads 1]
"""
import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

from edgesplit.codegen.split import split_model
from edgesplit.runtime.executor.executor import Executor
from edgesplit.runtime.segments.onnx_runner import session_options
from timing import paired_ratio

RATIO_TARGET = 1.03
EXTRA_SEGMENT_TARGET_US = 10.0


def zoo_model(name: str) -> Path:
    import onnx

    return Path(onnx.__file__).parent / "backend" / "test" / "data" / "light" / (name + ".onnx")


def small_cnn(path: Path, layers: int = 10, channels: int = 8) -> Path:
    """1x1x28x28 -> `layers` x (3x3 conv + relu) -> global pool -> 10 classes; random weights."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits = [], []
    previous, width = "x", 1
    for i in range(layers):
        weight = numpy_helper.from_array((rng.standard_normal((channels, width, 3, 3)) * 0.3).astype(np.float32),
                                         "w%d" % i)
        bias = numpy_helper.from_array(np.zeros(channels, np.float32), "b%d" % i)
        inits += [weight, bias]
        nodes.append(helper.make_node("Conv", [previous, weight.name, bias.name], ["conv%d" % i], pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("Relu", ["conv%d" % i], ["relu%d" % i]))
        previous, width = "relu%d" % i, channels
    fc = numpy_helper.from_array((rng.standard_normal((10, channels)) * 0.3).astype(np.float32), "fc_w")
    inits.append(fc)
    nodes.append(helper.make_node("GlobalAveragePool", [previous], ["pooled"]))
    nodes.append(helper.make_node("Flatten", ["pooled"], ["flat"]))
    nodes.append(helper.make_node("Gemm", ["flat", "fc_w"], ["y"], transB=1))
    graph = helper.make_graph(nodes, "small_cnn",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 28, 28])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def seconds_per_call(fn: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def interleaved(fns: Dict[str, Callable[[], object]], rounds: int, calls: int) -> Dict[str, List[float]]:
    """Per-call seconds of each function, one sample per round, order rotated each round."""
    names = list(fns)
    for name in names:  # warm-up outside the measurement
        seconds_per_call(fns[name], max(2, calls // 4))
    samples: Dict[str, List[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            samples[name].append(seconds_per_call(fns[name], calls))
    return samples


def monolithic(path: Path, threads: int, x: np.ndarray) -> Callable[[], object]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), sess_options=session_options(threads),
                                   providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    outputs = [session.get_outputs()[0].name]
    return lambda: session.run(outputs, {name: x})


def chained(bundle, threads: int, x: np.ndarray) -> Callable[[], object]:
    executor = Executor(bundle, threads=threads)
    return lambda: executor.run(x, use_exits=False)


def check_same_output(fns: Dict[str, Callable[[], object]]) -> float:
    """Max abs difference between every configuration's output and the first one's."""
    outputs = []
    for fn in fns.values():
        out = fn()
        outputs.append(out[0] if isinstance(out, list) else out.output)
    return max(float(np.abs(o - outputs[0]).max()) for o in outputs)


def summarise(samples: Dict[str, List[float]], scale: float, digits: int) -> Dict[str, Dict[str, float]]:
    return {name: {"median": round(statistics.median(v) * scale, digits), "min": round(min(v) * scale, digits)}
            for name, v in samples.items()}



def raw_chain(bundle, threads: int, x: np.ndarray, disabled: List[str]) -> Callable[[], object]:
    """The segments as plain sessions in a loop (no Executor), for the layout diagnostic below."""
    import onnxruntime as ort

    steps = []
    for seg in bundle.manifest.main:
        session = ort.InferenceSession(str(bundle.path_of(seg.id)), sess_options=session_options(threads),
                                       providers=["CPUExecutionProvider"], disabled_optimizers=disabled)
        steps.append((session, [t.name for t in seg.inputs], [t.name for t in seg.outputs]))
    first = bundle.manifest.inputs[0].name

    def run():
        env = {first: x}
        for session, inputs, outputs in steps:
            env.update(zip(outputs, session.run(outputs, {n: env[n] for n in inputs})))
        return [env[bundle.manifest.outputs[0].name]]

    return run


def resnet_ratio(work: Path, threads: int, rounds: int) -> Dict[str, object]:
    import onnxruntime as ort

    path = zoo_model("light_resnet50")
    every = split_model(path, work / "resnet50_all", cuts="all")
    auto = split_model(path, work / "resnet50_auto", cuts="auto")
    auto_plain = split_model(path, work / "resnet50_auto_plain", cuts="auto", layout_anchors=False)
    one = split_model(path, work / "resnet50_one", cuts=[])
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    no_nchwc = ["NchwcTransformer"]
    plain = ort.InferenceSession(str(path), sess_options=session_options(threads),
                                 providers=["CPUExecutionProvider"], disabled_optimizers=no_nchwc)
    fns = {"monolithic_session": monolithic(path, threads, x),
           "executor_1_segment": chained(one, threads, x),
           "executor_all_cuts": chained(every, threads, x),
           "executor_auto_cuts": chained(auto, threads, x),
           "executor_auto_cuts_no_layout_anchors": chained(auto_plain, threads, x),
           "monolithic_session_no_nchwc": lambda: plain.run(None, {"gpu_0/data_0": x}),
           "session_chain_all_cuts_no_nchwc": raw_chain(every, threads, x, no_nchwc)}
    max_diff = check_same_output(fns)
    samples = interleaved(fns, rounds, calls=1)
    all_ratio = paired_ratio(samples, "executor_all_cuts", "monolithic_session", digits=4)
    auto_ratio = paired_ratio(samples, "executor_auto_cuts", "monolithic_session", digits=4)
    return {
        "model": path.name,
        "segments": {"all_cuts": len(every.manifest.main), "auto_cuts": len(auto.manifest.main)},
        "threads_per_session": threads,
        "ms": summarise(samples, 1e3, 3),
        "ratio_all_cuts_over_monolithic": all_ratio,
        "ratio_auto_cuts_over_monolithic": auto_ratio,
        "ratio_auto_cuts_without_layout_anchors_over_monolithic": paired_ratio(
            samples, "executor_auto_cuts_no_layout_anchors", "monolithic_session", digits=4),
        "ratio_1_segment_executor_over_monolithic": paired_ratio(samples, "executor_1_segment", "monolithic_session", digits=4),
        "diagnostic_ratio_all_cuts_over_monolithic_without_nchwc_layout": paired_ratio(
            samples, "session_chain_all_cuts_no_nchwc", "monolithic_session_no_nchwc", digits=4),
        "max_abs_output_diff": max_diff,
        "target_ratio": RATIO_TARGET,
        "meets_target_all_cuts": bool(all_ratio["median_of_rounds"] <= RATIO_TARGET),
        "meets_target_auto_cuts": bool(auto_ratio["median_of_rounds"] <= RATIO_TARGET),
    }


def extra_segment_cost(work: Path, threads: int, rounds: int) -> Dict[str, object]:
    from edgesplit.codegen.graph import analyse_model, load_model

    path = small_cnn(work / "small_cnn.onnx")
    analysis = analyse_model(load_model(path))
    after_relu = [p.id for p in analysis.inner if not p.tensor.startswith("conv")]
    x = np.random.default_rng(0).standard_normal((1, 1, 28, 28)).astype(np.float32)
    fns, counts = {}, {}
    for segments in (1, 2, 4, 7, len(after_relu) + 1):
        step = len(after_relu) / segments
        cut_ids = sorted({after_relu[int(round(step * i)) - 1] for i in range(1, segments)})
        bundle = split_model(path, work / ("small_%d" % segments), cuts=cut_ids)
        name = "executor_%d_segments" % len(bundle.manifest.main)
        fns[name], counts[name] = chained(bundle, threads, x), len(bundle.manifest.main)
    every = split_model(path, work / "small_all", cuts="all")
    fns["executor_all_cuts_%d_segments" % len(every.manifest.main)] = chained(every, threads, x)
    fns["monolithic_session"] = monolithic(path, threads, x)
    max_diff = check_same_output(fns)
    samples = interleaved(fns, rounds, calls=20)
    median = {name: statistics.median(values) for name, values in samples.items()}
    ks = np.array([counts[n] for n in counts], dtype=float)
    slope, intercept = np.polyfit(ks, np.array([median[n] for n in counts]), 1)
    # One slope per round from its back-to-back samples, so load that comes and goes cancels out.
    round_slopes = [np.polyfit(ks, np.array([samples[n][r] for n in counts]), 1)[0] for r in range(rounds)]
    per_round = statistics.median(round_slopes)
    most = max(counts, key=counts.get)
    all_name = "executor_all_cuts_%d_segments" % len(every.manifest.main)
    return {
        "model": "small_cnn 1x1x28x28, 10 x (conv3x3 + relu), %d MACs" % analysis.total_macs,
        "threads_per_session": threads,
        "us": summarise(samples, 1e6, 2),
        "extra_segment_us_median_of_round_slopes": round(per_round * 1e6, 2),
        "extra_segment_us_slope_of_medians": round(slope * 1e6, 2),
        "extra_segment_us_%d_vs_1" % counts[most]: round(
            (median[most] - median["executor_1_segments"]) / (counts[most] - 1) * 1e6, 2),
        "extra_segment_us_all_cuts_incl_lost_fusion": round(
            (median[all_name] - median["executor_1_segments"]) / (len(every.manifest.main) - 1) * 1e6, 2),
        "executor_1_segment_over_monolithic_us": round(
            (median["executor_1_segments"] - median["monolithic_session"]) * 1e6, 2),
        "fitted_intercept_us": round(intercept * 1e6, 2),
        "max_abs_output_diff": max_diff,
        "target_us": EXTRA_SEGMENT_TARGET_US,
        "meets_target": bool(per_round * 1e6 <= EXTRA_SEGMENT_TARGET_US),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30, help="interleaved rounds of the ResNet-50 part")
    parser.add_argument("--small-rounds", type=int, default=150, help="interleaved rounds of the small-CNN part")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads of every session (both sides)")
    args = parser.parse_args(argv)
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="edgesplit-bench-") as tmp:
        work = Path(tmp)
        report = {
            "benchmark": "segment_overhead",
            "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                        "python": platform.python_version(), "onnxruntime": ort.__version__},
            "rounds": {"resnet50": args.rounds, "small_cnn": args.small_rounds},
            "resnet50_chained_vs_monolithic": resnet_ratio(work, args.threads, args.rounds),
            "small_cnn_extra_segment_cost": extra_segment_cost(work, args.threads, args.small_rounds),
        }
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
