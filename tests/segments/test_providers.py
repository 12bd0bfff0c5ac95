"""Execution providers come from the board config, in order; missing ones fall back to CPU, loudly."""
import logging

import onnxruntime as ort
import pytest

from edgesplit.runtime.boards.config import load_named_board
from edgesplit.runtime.executor.executor import Executor
from edgesplit.runtime.segments.providers import (CPU, check_session_providers, choose_providers, providers_for_board,
                                        runner_factory_for_board)

CUDA, TRT = "CUDAExecutionProvider", "TensorrtExecutionProvider"
cpu_only = pytest.mark.skipif(CUDA in ort.get_available_providers(), reason="this onnxruntime has CUDA")


def warnings_of(caplog):
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and r.name == "edgesplit.runtime.segments.providers"]


@cpu_only
def test_cuda_first_on_a_cpu_only_machine_gets_cpu_and_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        assert choose_providers([CUDA, CPU]) == [CPU]
    messages = warnings_of(caplog)
    assert any(CUDA in m and "not in this onnxruntime build" in m and "onnxruntime-gpu" in m for m in messages)
    assert any("falling back to CPUExecutionProvider" in m for m in messages)


def test_order_is_kept_and_each_missing_provider_is_named(caplog):
    with caplog.at_level(logging.WARNING):
        chosen = choose_providers([TRT, CUDA, CPU], available=[CUDA, CPU, "AzureExecutionProvider"])
    assert chosen == [CUDA, CPU]
    messages = warnings_of(caplog)
    assert len(messages) == 1 and TRT in messages[0]


def test_cpu_is_always_the_last_resort():
    assert choose_providers([CUDA], available=[CUDA, CPU]) == [CUDA, CPU]
    assert choose_providers([CPU, CUDA], available=[CUDA, CPU]) == [CUDA, CPU]


def test_nothing_is_logged_when_everything_is_there(caplog):
    with caplog.at_level(logging.WARNING):
        assert choose_providers([TRT, CUDA, CPU], available=[TRT, CUDA, CPU]) == [TRT, CUDA, CPU]
    assert warnings_of(caplog) == []


@cpu_only
def test_a_jetson_config_runs_the_bundle_on_cpu_here(onnx_bundle, images, caplog):
    board = load_named_board("jetson_nano")
    assert board.execution.providers[:2] == (TRT, CUDA)
    with caplog.at_level(logging.WARNING):
        executor = Executor(onnx_bundle, runner_factory=runner_factory_for_board(board))
    # Each runner records what its session really got.
    assert {seg: runner.providers for seg, runner in executor.runners.items()} == {
        seg.id: [CPU] for seg in onnx_bundle.manifest.segments}
    messages = warnings_of(caplog)
    assert sum(TRT in m for m in messages) == 1 and sum(CUDA in m for m in messages) == 1  # once, not per segment
    assert "jetson_nano.toml" in messages[0]
    assert executor.run(images[:1]).output.shape == (1, 10)


def test_the_cpu_board_config_gets_cpu_silently(onnx_bundle, caplog):
    board = load_named_board("x86_cpu")
    with caplog.at_level(logging.WARNING):
        assert providers_for_board(board) == [CPU]
        Executor(onnx_bundle, runner_factory=runner_factory_for_board(board))
    assert warnings_of(caplog) == []


def test_a_provider_dropped_by_onnxruntime_at_session_creation_is_logged(caplog):
    with caplog.at_level(logging.WARNING):
        check_session_providers("main0", [CUDA, CPU], [CPU])
    assert warnings_of(caplog) == ["segment main0: onnxruntime could not start CUDAExecutionProvider (its "
                                   "libraries failed to load?) and runs on CPUExecutionProvider instead"]


def test_a_tflite_bundle_never_asks_onnxruntime_for_providers(tflite_bundle, caplog, monkeypatch):
    from support.tflite_twin import tflite_installed

    if not tflite_installed():
        pytest.skip("no TFLite interpreter")
    from edgesplit.runtime.segments import providers

    monkeypatch.setattr(providers, "available_providers", lambda: pytest.fail("asked onnxruntime"))
    with caplog.at_level(logging.WARNING):
        Executor(tflite_bundle, runner_factory=runner_factory_for_board(load_named_board("jetson_nano")))
    assert warnings_of(caplog) == []
