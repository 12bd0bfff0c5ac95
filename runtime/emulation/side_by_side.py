"""Several strategies at once through real processes, on one emulated board and one replayed recording.

One ``edgesplit peer`` subprocess on loopback; one emulated device per strategy (the runtime's
``Pipeline``, paced to the board profile), each behind its own software link replaying the same
bandwidth recording from the same instant, so every strategy sees the same bandwidth at the same
task. Used by ``edgesplit demo`` and ``edgesplit evaluate --real``.
"""
import threading
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from edgesplit.runtime.controller.reward import Bounds
from edgesplit.runtime.controller.strategies import Strategy
from edgesplit.runtime.device.loop import run_stream
from edgesplit.runtime.device.pipeline import LinkSetup, Pipeline, PipelineSettings
from edgesplit.runtime.device.summary import summarize
from edgesplit.runtime.emulation.pacing import Emulation
from edgesplit.runtime.peer.process import PeerProcess

START_MARGIN_S = 0.5  # emulated seconds between setting up and the first arrival


def run_strategies(bundle_path, bundle, chosen: Sequence[Strategy], images: np.ndarray, labels: Optional[np.ndarray],
                   link: LinkSetup, bounds: Bounds, emulation: Emulation, period_s: float, store, progress,
                   run_config: Dict[str, Any]) -> Tuple[List[Dict[str, Any]], List[Any], float]:
    """Run every strategy at once through real processes: one peer subprocess on loopback, one emulated device
    per strategy, each behind its own software link replaying ``link`` from the same instant, so every strategy
    sees the same bandwidth at the same task. ``progress``: the command's reporter (``say(text)``,
    ``wait(threads, sessions, total)``: ``edgesplit.runtime.commands.output.Progress``). Returns one summary row
    per strategy (``summarize`` plus strategy, policy_id, decisions, reward), every strategy's task results, and
    the emulated time of the first arrival.
    (``edgesplit demo`` and ``edgesplit evaluate --real``.)"""
    progress.say("starting the peer on loopback and %d emulated devices (one per strategy)" % len(chosen))
    peer = PeerProcess(bundle_path)
    sessions = []  # type: List[Pipeline]
    try:
        for strategy in chosen:
            settings = PipelineSettings(emulation=emulation, peer=peer.endpoint, link=link, shared_store=store,
                                        run_config=run_config)
            sessions.append(Pipeline(bundle, strategy, bounds, settings))
        # Every relay replays the trace from the same instant, and every stream's first task arrives then.
        origin = emulation.clock() + START_MARGIN_S
        real_origin = time.monotonic() + emulation.to_real(START_MARGIN_S)
        for session in sessions:
            session.relay.link.schedule.start = real_origin
        outputs = {}  # type: Dict[int, Any]
        errors = []  # type: List[BaseException]

        def work(index: int, session: Pipeline) -> None:
            try:
                outputs[index] = run_stream(session.loop, images, labels, period_s=period_s, origin=origin)
            except BaseException as exc:  # reported after the join
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i, s), name="strategy-%d" % i) for i, s in enumerate(sessions)]
        progress.say("running %d strategies on %d images at once, one task every %g ms of emulated time "
                     "(about %.0f s)" % (len(sessions), len(images), 1e3 * period_s,
                                         len(images) * period_s / emulation.speedup))
        for thread in threads:
            thread.start()
        progress.wait(threads, sessions, len(images))
        if errors:
            raise errors[0]
        rows = []
        for i, session in enumerate(sessions):
            summary = summarize(outputs[i], bounds, len(bundle.manifest.exits))
            summary["strategy"] = session.controller.strategy.name
            summary["policy_id"] = session.controller.strategy.policy_id
            summary["decisions"] = len(session.controller.decisions)
            rewards = [d["reward"] for d in session.controller.decisions if "reward" in d]
            summary["reward"] = float(np.mean(rewards)) if rewards else None  # EdgeML's, per action interval
            rows.append(summary)
    finally:
        for session in sessions:
            session.close()
        peer.stop()
    return rows, [outputs[i] for i in range(len(sessions))], origin
