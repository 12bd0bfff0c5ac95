"""Building the variant selector for the daemon from ``[model] variants`` and ``[linucb]``."""
import logging
from typing import Sequence

from edgesplit.policies_lite.linucb import LinUCBConfig
from edgesplit.runtime.controller.strategies import local_only
from edgesplit.runtime.selection.selector import (Arm, VariantSelector, context_features,
                                                  measure_startup_latency)
from edgesplit.runtime.selection.variants import Variant

log = logging.getLogger(__name__)


def learner_config(section, arm_names: Sequence[str]) -> LinUCBConfig:
    features = context_features(arm_names)
    return LinUCBConfig(dim=len(features), alpha=section.alpha, delta=section.delta, lambda_eta=section.lambda_eta,
                        lambda_v_scale=section.lambda_v_scale, lambda_v_power=section.lambda_v_power,
                        features=features)


def local_strategy(bundle):
    manifest = bundle.manifest
    side = [e.threshold for e in manifest.exits if e.head is not None]
    return local_only(len(side), len(manifest.main), side)


def build_selector(pipeline, variants: Sequence[Variant], section, latency_bound_s: float) -> VariantSelector:
    """One device loop per variant (the pipeline's own for the first), timed once, under one LinUCB learner.

    ``pipeline`` was built for ``variants[0].bundle``. In variant mode no controller transitions are logged:
    the controllers hold a static local action, and the bandit's own record is each task's arm and rating.
    """
    state = section.state  # its folder is checked with the others before start-up (daemon/preflight.py)
    pipeline.loop.arm = variants[0].name
    pipeline.controller.store = None
    loops = [pipeline.loop] + [pipeline.variant_loop(v.bundle, local_strategy(v.bundle), v.name) for v in variants[1:]]
    arms = [Arm(v, loop, measure_startup_latency(loop.executor)) for v, loop in zip(variants, loops)]
    proxy = pipeline.energy_proxy
    selector = VariantSelector(arms, learner_config(section, [v.name for v in variants]), latency_bound_s, state_path=state or None,
                               device_reading=(lambda: proxy(0.0, 0.0)) if proxy is not None else (lambda: 0.0),
                               delay_unit_s=section.delay_unit_s)
    log.info("selector linucb over %s (start-up latency %s ms)", ", ".join(a.name for a in arms),
             ", ".join("%.3f" % (1e3 * a.latency_s) for a in arms))
    return selector
