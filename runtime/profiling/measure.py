"""Measuring each segment of a bundle on this machine.

Each segment (main pieces and exit heads) is timed alone on the real tensors it would see: one pass
of the main branch on a random input in [0, 1) supplies every segment's inputs. Every segment gets
``warmup`` untimed calls then ``repeats`` timed ones (batch 1); the profile keeps median, p90, mean,
min and max in milliseconds. Segments run one after another, never concurrently, so they do not
compete for cores while measured. Given ``energy`` (the command passes ``measure_proxy`` on the live
board's sampler), the board's energy proxy is read afterwards while every segment runs back to back
and while nothing runs (``edgesplit.runtime.profiling.energy``).
"""
import datetime
import logging
import os
import platform
import time
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from edgesplit.runtime.bundle.store import Bundle
from edgesplit.runtime.errors import InputError
from edgesplit.runtime.profiling.schema import FORMAT, FORMAT_VERSION, validate_profile
from edgesplit.runtime.segments.base import SegmentRunner, zeros_for

log = logging.getLogger(__name__)

Clock = Callable[[], float]


def summarise(samples_s: List[float]) -> Dict[str, float]:
    """Milliseconds: median, p90 (linear interpolation), mean, min, max."""
    ms = np.asarray(samples_s, dtype=np.float64) * 1e3
    return {"median_ms": _round(np.median(ms)), "p90_ms": _round(np.percentile(ms, 90)),
            "mean_ms": _round(ms.mean()), "min_ms": _round(ms.min()), "max_ms": _round(ms.max())}


def _round(value: float) -> float:
    return float("%.6g" % value)


def time_runner(runner: SegmentRunner, feeds: Dict[str, np.ndarray], warmup: int, repeats: int,
                clock: Clock = time.perf_counter) -> List[float]:
    for _ in range(warmup):
        runner.run(feeds)
    samples = []
    for _ in range(repeats):
        start = clock()
        runner.run(feeds)
        samples.append(clock() - start)
    return samples


def segment_inputs(bundle: Bundle, runners: Dict[str, SegmentRunner], seed: int = 0) -> Dict[str, np.ndarray]:
    """Every tensor of one main-branch pass on a random batch-1 input: what each segment really reads."""
    rng = np.random.default_rng(seed)
    env = {}
    for name, zeros in zeros_for(bundle.manifest.inputs).items():
        env[name] = rng.random(zeros.shape).astype(zeros.dtype) if zeros.dtype.kind == "f" else zeros
    for seg in bundle.manifest.main:
        env.update(runners[seg.id].run(env))
    return env


def backend_versions(bundle: Bundle) -> Dict[str, str]:
    versions = {}
    backends = {s.backend for s in bundle.manifest.segments}
    if "onnxruntime" in backends:
        import onnxruntime

        versions["onnxruntime"] = onnxruntime.__version__
    if "tflite" in backends:
        from edgesplit.runtime.segments.tflite_runner import tflite_library

        versions["tflite"] = tflite_library()
    return versions


def profile_bundle(bundle: Bundle, board: str, runner_factory: Callable[..., SegmentRunner],
                   warmup: int = 10, repeats: int = 50, threads: Optional[int] = None,
                   providers: Optional[List[str]] = None, clock: Clock = time.perf_counter,
                   energy: Optional[Callable[[Callable[[], None]], Optional[Dict[str, Any]]]] = None
                   ) -> Dict[str, Any]:
    """Time every segment of ``bundle`` here; returns a validated profile document for ``board``.

    ``energy(work)``: the energy proxy's busy/idle record while ``work`` (one call of every segment) loops."""
    if repeats < 1 or warmup < 0:
        raise InputError("repeats must be >= 1 and warmup >= 0, got repeats=%d warmup=%d" % (repeats, warmup))
    manifest = bundle.manifest
    runners = {seg.id: runner_factory(seg, bundle.path_of(seg.id), threads=threads) for seg in manifest.segments}
    env = segment_inputs(bundle, runners)
    segments = []
    for seg in manifest.segments:
        feeds = {t.name: env[t.name] for t in seg.inputs}
        stats = summarise(time_runner(runners[seg.id], feeds, warmup, repeats, clock))
        got = getattr(runners[seg.id], "providers", None)
        segments.append(dict({"id": seg.id, "role": seg.role, "backend": seg.backend,
                              "provider": got[0] if got else None, "macs": seg.macs}, **stats))
        log.info("%s: median %.3f ms, p90 %.3f ms", seg.id, stats["median_ms"], stats["p90_ms"])
    median = {s["id"]: s["median_ms"] for s in segments}
    main_ids = [s.id for s in manifest.main]
    cuts = []
    for cut in manifest.cuts:
        live = sum(env[t.name][:1].nbytes if t.batched else env[t.name].nbytes for t in cut.tensors)
        cuts.append({"id": cut.id, "tensors": [t.name for t in cut.tensors], "bytes_per_sample": int(live),
                     "main_median_ms_before": _round(sum(median[i] for i in main_ids[:cut.id])),
                     "main_median_ms_after": _round(sum(median[i] for i in main_ids[cut.id:]))})
    profile = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "board": board,
        "bundle_name": manifest.name,
        "bundle_sha256": bundle.hash,
        "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "host": {"machine": platform.machine(), "system": platform.system(), "release": platform.release(),
                 "python": platform.python_version(), "cpu_count": os.cpu_count() or 0,
                 "numpy": np.__version__},
        "backends": backend_versions(bundle),
        "settings": {"batch": 1, "warmup": warmup, "repeats": repeats, "threads": threads,
                     "providers": list(providers or [])},
        "segments": segments,
        "cuts": cuts,
    }
    if energy is not None:
        all_feeds = [(runners[seg.id], {t.name: env[t.name] for t in seg.inputs}) for seg in manifest.segments]

        def every_segment_once() -> None:
            for runner, feeds in all_feeds:
                runner.run(feeds)

        profile["energy"] = energy(every_segment_once)
    return validate_profile(profile, "measured profile")

