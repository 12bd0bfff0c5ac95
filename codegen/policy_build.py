"""Building a frozen EdgeML policy for any bundle from profiles and measurements (no learning yet).

The procedure, reproducible from its inputs:

1. Exit statistics: run the bundle on the profiling images (at least MIN_PROFILING_IMAGES, shaped as
   the bundle's input; for the default model its 500-image validation split and the 500 test-split
   images the package does not ship, never the held-out images the demo runs; any other bundle
   brings its own) and record each side exit's normalised entropy and whether each exit is right.
2. Costs: per segment, the emulated board's time (MACs x workload scale / MACs per second, or with
   ``--measured-profile NAME`` the median measured by ``edgesplit profile`` x workload scale); per cut,
   the bytes of its live tensors plus the wire header; the link's base RTT; the board's power model.
3. Grid: for every bandwidth on a log grid (the demo's fixed 0.02-5 Mbit/s; for any other bundle, or
   with ``--link``, from the lowest to the highest rate of the given recordings: ``bandwidth_grid``)
   and the peer up or down, predict every action (cut x a grid of per-exit thresholds; the cut alone
   for a bundle without early exits) with ``edgesplit.runtime.controller.planner.predict`` and keep the best: among
   the actions whose predicted accuracy is within POLICY_ACCURACY_ALLOWANCE (1.5 points, the
   budget the single-threshold baseline gets, so the baseline's action is always a candidate; a
   stricter 1 point let that baseline beat the policy's satisfaction rate) of the most
   accurate action at that state, the highest satisfaction rate (both bounds), then among actions
   within 0.5 point of it the most accurate, then the one offloading least, then the least energy.
   (The accuracy floor is the
   user's accuracy budget; without it the best satisfaction rate at a low bandwidth is bought with
   the weakest exits.) The satisfaction rate of an action is averaged over the
   bandwidth times each of ``BANDWIDTH_UNCERTAINTY``: the state's bandwidth is an estimate, and
   the link can change before the next decision, so an action that only just meets the bound at
   the estimated rate is worth less than one with a margin. The factors are measured, not chosen:
   the deciles' midpoints (5th, 15th, ..., 95th percentile) of the next 1-second rate over the mean
   of the previous three seconds, pooled over the bandwidth recordings the package ships
   (``bandwidth_change_factors``). A narrower guess (0.8 to 1.2) let the policy offload at rates
   where the real link then dipped below the bound: 21 fallbacks in a demo run, and a lower
   satisfaction rate than staying on the device.
4. Fit: a small tanh MLP (features: latency_mean_s, energy_mean, bandwidth_mbps, peer_alive; outputs:
   threshold logits, cut, interval) by full-batch Adam (torch on the CPU, seeded, one thread, float64) on
   the grid's state -> action pairs.
   Latency and energy are drawn at random for each sample (the grid's action does not depend on them)
   so the fit learns to ignore them; each sample's bandwidth is drawn across half the gap to the
   neighbouring grid points, so every bandwidth in the grid's range has a target. The fitted policy is decoded on the grid and its agreement with
   the table is recorded in the provenance; a policy that disagrees on more than 10 % is refused.
5. Save with ``edgesplit.policies_lite.save_policy``; the static baselines chosen by the same profiling
   (Neurosurgeon's best cut, the best single threshold) go into the provenance for the demo.
"""
import logging
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from edgesplit.policies_lite import edgeml_decoder, load_policy, save_policy
from edgesplit.runtime.bundle.store import load_bundle
from edgesplit.runtime.controller.planner import HEADER_BYTES, CostModel, ExitStats, Prediction, best_static_cut, predict
from edgesplit.runtime.controller.reward import Bounds
from edgesplit.runtime.controller.state import EDGEML_FEATURES
from edgesplit.runtime.emulation.board import load_emulated_board
from edgesplit.runtime.emulation.segment_times import SegmentTimes
from edgesplit.runtime.errors import InputError
from edgesplit.runtime.inputs import check_labels, check_model_input
from edgesplit.runtime.executor.entropy import normalised_entropy
from edgesplit.runtime.executor.executor import Executor
from edgesplit.runtime.profiling.energy import proxy_energy_model
from edgesplit.runtime.profiling.store import load_profile as load_measured_profile

log = logging.getLogger(__name__)

THRESHOLD_GRID = (0.0, 0.03, 0.06, 0.1, 0.15, 0.2, 0.3, 0.45, 0.6, 1.01)
BANDWIDTH_GRID_MBPS = tuple(float(x) for x in np.round(np.geomspace(0.02, 5.0, 41), 4))
INTERVAL = 2
# bandwidth_change_factors() over the shipped bandwidth recordings (852 steps), rounded to 2 digits; a test recomputes it.
BANDWIDTH_UNCERTAINTY = (0.6, 0.74, 0.83, 0.91, 0.97, 1.03, 1.08, 1.15, 1.3, 1.59)
CHANGE_HISTORY_STEPS = 3
SR_TOLERANCE = 0.005
GRID_POINTS = 41
MIN_PROFILING_IMAGES = 100  # fewer and one image moves an exit's measured accuracy by more than a point
ACCURACY_ALLOWANCE = 0.015  # the static single-threshold baseline's budget (the demo's acceptance)
POLICY_ACCURACY_ALLOWANCE = 0.015  # the same budget as the single-threshold baseline: its action is one of ours


def bandwidth_change_factors(rates_per_recording: Sequence[np.ndarray], history: int = CHANGE_HISTORY_STEPS
                             ) -> Tuple[float, ...]:
    """Deciles' midpoints of rate[i] / mean(rate[i - history:i]) pooled over the recordings (1-second steps)."""
    ratios = []
    for rates in rates_per_recording:
        rates = np.asarray(rates, dtype=float)
        for i in range(history, len(rates)):
            past = rates[i - history:i].mean()
            if past > 0:
                ratios.append(rates[i] / past)
    if not ratios:
        raise InputError("no bandwidth recording has more than %d steps to measure bandwidth changes on" % history)
    return tuple(float(q) for q in np.round(np.quantile(ratios, np.arange(0.05, 1.0, 0.1)), 2))


def bandwidth_grid(rates_bps: Sequence[np.ndarray], points: int = GRID_POINTS) -> Tuple[float, ...]:
    """A log grid from the lowest positive to the highest rate of the recordings, in Mbit/s (4 digits)."""
    rates = np.concatenate([np.asarray(r, dtype=float) for r in rates_bps])
    positive = rates[rates > 0]
    if positive.size == 0:
        raise InputError("the bandwidth recordings have no positive rate to plan for")
    low, high = positive.min() / 1e6, positive.max() / 1e6
    if high <= low * 1.01:
        low, high = low / 2.0, high * 2.0  # a constant link: plan around it
    # 4 significant digits, the ends rounded outwards so the grid still covers every recorded rate.
    digits = [10.0 ** (math.floor(math.log10(v)) - 3) for v in (low, high)]
    low, high = math.floor(low / digits[0]) * digits[0], math.ceil(high / digits[1]) * digits[1]
    inner = [float("%.4g" % x) for x in np.geomspace(low, high, points)[1:-1]]
    return tuple([float("%.4g" % low)] + inner + [float("%.4g" % high)])


def check_profiling_images(bundle, images: np.ndarray, labels: np.ndarray, source: str,
                           labels_source: Optional[str] = None) -> None:
    """Refuse images the bundle cannot read, labels that cannot be theirs, or too few images to measure the exits
    on, before any session runs. ``source`` names the images (their file), ``labels_source`` the labels."""
    labels_name = labels_source or "the labels of %s" % source
    check_model_input(images, bundle.manifest.inputs[0], source, "bundle %s" % bundle.manifest.name, "images")
    check_labels(labels, len(images), bundle.manifest.outputs[0].shape[-1], labels_name, source)
    if len(labels) < MIN_PROFILING_IMAGES:
        raise InputError("%s: %d labelled images are too few to measure the exits on: at least %d are needed "
                         "(images the model and its exit heads were not trained on)"
                         % (source, len(labels), MIN_PROFILING_IMAGES))


def exit_training_data(provenance: Any) -> List[str]:
    """The sha256 of every images file the bundle's provenance says its exit heads were trained on (add-exits)."""
    found = []  # type: List[str]
    if isinstance(provenance, dict):
        for key, value in provenance.items():
            if key == "images_sha256" and isinstance(value, str):
                found.append(value)
            else:
                found.extend(exit_training_data(value))
    elif isinstance(provenance, list):
        for value in provenance:
            found.extend(exit_training_data(value))
    return found


def warn_if_exit_training_data(bundle, images_path: str, images_sha256: Optional[str] = None) -> None:
    """A warning when the profiling images are the file the bundle's exit heads were trained on: measured on their own
    training images the exits look more confident and accurate than on what the board will see."""
    from edgesplit.runtime.bundle.manifest import file_sha256

    trained_on = exit_training_data(getattr(bundle.manifest, "provenance", None))
    if trained_on and (images_sha256 or file_sha256(str(images_path))) in trained_on:
        log.warning("%s: these are the images bundle %s's exit heads were trained on (add-exits' provenance has "
                    "their sha256): measured on them the exits look better than on new inputs; give images the "
                    "model and its heads never saw (a held-out split)", images_path, bundle.manifest.name)


def exit_stats(bundle, images: np.ndarray, labels: np.ndarray, progress: bool = False) -> ExitStats:
    """Entropy at every side exit and correctness of every exit, for each image (exits all evaluated)."""
    from tqdm import tqdm

    executor = Executor(bundle, warm_up=False)
    manifest = bundle.manifest
    n_side = len(executor.side_exits)
    entropies = np.zeros((len(labels), n_side))
    correct = np.zeros((len(labels), len(manifest.exits)), dtype=bool)
    for i in tqdm(range(len(labels)), desc="exit statistics", unit="image", disable=not progress, leave=False,
                  mininterval=1.0):
        env = {manifest.inputs[0].name: images[i:i + 1]}
        for cut_id, seg in enumerate(executor.main):
            env.update(executor.runners[seg.id].run(env))
            for ex in manifest.exits_at(cut_id + 1):
                if ex.head is None:
                    scores = env[manifest.outputs[0].name]
                else:
                    head = manifest.segment(ex.head)
                    scores = executor.runners[ex.head].run(env)[head.outputs[0].name]
                    entropies[i, executor.side_exits.index(ex)] = float(normalised_entropy(scores).max())
                correct[i, ex.id] = int(np.argmax(scores[0])) == int(labels[i])
    return ExitStats(entropies, correct)


def cost_model(bundle, board: str, workload_scale: float, rtt_s: float, peer_s: float = 0.001,
               measured: Optional[Dict[str, Any]] = None, proxy_energy: bool = False) -> CostModel:
    """Segment times from ``measured`` (a loaded ``edgesplit profile`` document) where given, else the emulated
    board's MACs model. Energy from the emulated board's power model (mJ per task), or with ``proxy_energy``
    from the energy proxy readings ``measured`` records (the live board's unit: see ``proxy_energy_model``)."""
    profile = load_emulated_board(board)
    times = SegmentTimes(profile, workload_scale, measured)
    manifest = bundle.manifest
    side = [e for e in manifest.exits if e.head is not None]
    if proxy_energy:
        if not measured or not measured.get("energy"):
            raise InputError("the measured profile records no energy proxy reading: profile the bundle again on the "
                             "board (edgesplit profile) with its energy proxy readable")
        energy = proxy_energy_model(measured["energy"])
    else:
        def energy(busy, idle):
            return 1000.0 * (profile.busy_power_w * busy + profile.idle_power_w * idle)
    return CostModel(
        main_s=[times.seconds(s.macs, s.id) for s in manifest.main],
        head_s=[times.seconds(manifest.segment(e.head).macs, e.head) for e in side],
        head_cut=[e.cut for e in side],
        cut_bytes=[c.bytes_per_sample + HEADER_BYTES for c in manifest.cuts],
        rtt_s=rtt_s, peer_s=peer_s, energy=energy)


def candidate_actions(n_side: int, n_cuts: int):
    if n_side == 0:  # a bundle without early exits: the cut is the whole action
        for cut in range(n_cuts):
            yield (), cut
        return
    grids = np.array(np.meshgrid(*([THRESHOLD_GRID] * n_side), indexing="ij")).reshape(n_side, -1).T
    for cut in range(n_cuts):
        for thresholds in grids:
            yield tuple(float(t) for t in thresholds), cut


def robust_predict(thresholds: Sequence[float], cut: int, bandwidth_bps: float, peer_alive: bool, stats: ExitStats,
                   cost: CostModel, bounds: Bounds) -> Prediction:
    """``predict`` averaged over the bandwidth times each factor of BANDWIDTH_UNCERTAINTY."""
    preds = [predict(thresholds, cut, True, bandwidth_bps * f, peer_alive, stats, cost, bounds)
             for f in BANDWIDTH_UNCERTAINTY]
    return Prediction(*[float(np.mean([getattr(p, k) for p in preds]))
                        for k in ("sr", "accuracy", "latency_s", "energy", "offloaded")])


def best_action(bandwidth_bps: float, peer_alive: bool, stats: ExitStats, cost: CostModel, bounds: Bounds,
                n_side: int, n_cuts: int, cuts: Optional[Sequence[int]] = None,
                single_threshold: bool = False) -> Tuple[Tuple[float, ...], int, Any]:
    scored = []
    for thresholds, cut in candidate_actions(n_side, n_cuts):
        if cuts is not None and cut not in cuts:
            continue
        if single_threshold and len(set(thresholds)) > 1:
            continue
        p = robust_predict(thresholds, cut, bandwidth_bps, peer_alive, stats, cost, bounds)
        scored.append((p, thresholds, cut))
    most_accurate = max(p.accuracy for p, _, _ in scored)
    scored = [s for s in scored if s[0].accuracy >= most_accurate - POLICY_ACCURACY_ALLOWANCE]
    top = max(p.sr for p, _, _ in scored)
    near = [s for s in scored if s[0].sr >= top - SR_TOLERANCE]
    # Ties: the more accurate, then the one that sends less (a task that cannot meet the bound either way
    # should not load the link), then the least energy.
    p, thresholds, cut = max(near, key=lambda s: (s[0].accuracy, -s[0].offloaded, -s[0].energy, s[0].sr))
    return thresholds, cut, p


def best_static_single_threshold(bandwidths_bps: Sequence[float], stats: ExitStats, cost: CostModel, bounds: Bounds,
                                 n_side: int, n_cuts: int) -> Tuple[Tuple[float, ...], int]:
    """EdgeML-T1 as a static baseline: the (cut, one threshold for all exits) with the best mean predicted SR
    over the profiled bandwidths among those whose predicted accuracy is within ACCURACY_ALLOWANCE of the most
    accurate one (the allowance the demo's acceptance grants the adaptive policy), then the most accurate."""
    scored = []
    for t in THRESHOLD_GRID:
        for cut in range(n_cuts):
            preds = [predict([t] * n_side, cut, True, b, True, stats, cost, bounds) for b in bandwidths_bps]
            scored.append((np.mean([p.sr for p in preds]), np.mean([p.accuracy for p in preds]), cut, t))
    best_accuracy = max(s[1] for s in scored)
    sr, acc, cut, t = max(s for s in scored if s[1] >= best_accuracy - ACCURACY_ALLOWANCE)
    return tuple([t] * n_side), cut


# ---------------------------------------------------------------- fitting


def _targets(thresholds: Sequence[float], cut: int) -> List[float]:
    logits = [math.log(min(max(t, 1e-3), 0.999) / (1.0 - min(max(t, 1e-3), 0.999))) for t in thresholds]
    return logits + [cut + 0.5, INTERVAL + 0.5]


def fit_mlp(x: np.ndarray, y: np.ndarray, hidden: int = 32, steps: int = 4000, seed: int = 0,
            lr: float = 0.01, progress: bool = False
            ) -> Tuple[List[Tuple[np.ndarray, np.ndarray]], np.ndarray, np.ndarray]:
    """Full-batch Adam (torch, CPU, float64) on half the summed squared error per sample; returns the layers as
    numpy (weight [out, in], bias) pairs and the input normalisation, as ``policies_lite`` stores them.

    Deterministic for a seed: ``torch.manual_seed``, one thread, deterministic algorithms (the previous global
    settings are restored afterwards). Weights start normal with std sqrt(1 / fan-in), biases at zero.
    """
    import torch
    from torch import nn
    from tqdm import tqdm

    mean, std = x.mean(axis=0), x.std(axis=0)
    std[std == 0] = 1.0
    sizes = [x.shape[1], hidden, hidden, y.shape[1]]
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.manual_seed(seed)
    torch.set_num_threads(1)  # a 4-32-32-4 net is fastest on one thread, and one thread sums in one order
    torch.use_deterministic_algorithms(True)
    try:
        linears = [nn.Linear(sizes[i], sizes[i + 1]).double() for i in range(3)]
        with torch.no_grad():
            for linear in linears:
                nn.init.normal_(linear.weight, std=math.sqrt(1.0 / linear.in_features))
                nn.init.zeros_(linear.bias)
        model = nn.Sequential(linears[0], nn.Tanh(), linears[1], nn.Tanh(), linears[2])
        optimiser = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8)
        xn = torch.from_numpy((x - mean) / std).double()
        target = torch.from_numpy(np.asarray(y, dtype=np.float64))
        loss = torch.zeros(())
        for _ in tqdm(range(steps), desc="fitting the policy MLP", unit="step", disable=not progress,
                         leave=False, mininterval=1.0):
            optimiser.zero_grad()
            loss = 0.5 * ((model(xn) - target) ** 2).sum(dim=1).mean()
            loss.backward()
            optimiser.step()
        log.info("policy MLP fit: %d steps, final loss %.5f", steps, float(loss.detach()))
        layers = [(lin.weight.detach().numpy().copy(), lin.bias.detach().numpy().copy()) for lin in linears]
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
    return layers, mean, std


# ---------------------------------------------------------------- the procedure


def build_policy(bundle_path: str, board: str, out: Path, workload_scale: float, latency_bound_s: float,
                 energy_bound: float, rtt_s: float, images: np.ndarray, labels: np.ndarray, images_source: Any,
                 mean_bandwidth_bps: float, seed: int = 0,
                 bandwidth_samples_bps: Optional[Sequence[float]] = None, fit_steps: int = 4000,
                 measured_profile: Optional[str] = None, progress: bool = False,
                 bandwidth_grid_mbps: Sequence[float] = BANDWIDTH_GRID_MBPS,
                 extra_provenance: Optional[Dict[str, Any]] = None, proxy_energy: bool = False) -> Dict[str, Any]:
    """``measured_profile``: plan from ``BUNDLE/profiles/<name>.json`` instead of the board's MACs model;
    ``proxy_energy``: plan energy as the live board's energy proxy recorded in that profile (its unit, e.g.
    MHz), so the policy suits the board's own energy input (``energy_bound`` is then in that unit);
    ``progress``: tqdm bars on stderr for the three slow steps (exit statistics, grid, fit);
    ``energy_bound``: mJ per task, ``math.inf`` for none; ``bandwidth_grid_mbps``: the bandwidths planned for
    (``bandwidth_grid`` spans given recordings); ``extra_provenance``: merged into the policy's metadata."""
    from tqdm import tqdm

    bundle = load_bundle(bundle_path)
    check_profiling_images(bundle, images, labels, images_source.get("images_file", "images")
                           if isinstance(images_source, dict) else images_source,
                           images_source.get("labels_file") if isinstance(images_source, dict) else None)
    if isinstance(images_source, dict) and images_source.get("images_sha256"):
        warn_if_exit_training_data(bundle, images_source.get("images_file", "images"), images_source["images_sha256"])
    grid_mbps = tuple(float(b) for b in bandwidth_grid_mbps)
    grid_step = math.log(grid_mbps[-1] / grid_mbps[0]) / (len(grid_mbps) - 1)
    measured = load_measured_profile(bundle, measured_profile) if measured_profile else None
    manifest = bundle.manifest
    n_side = len([e for e in manifest.exits if e.head is not None])
    n_cuts = len(manifest.cuts)
    bounds = Bounds(latency_bound_s, energy_bound)
    stats = exit_stats(bundle, images, labels, progress=progress)
    cost = cost_model(bundle, board, workload_scale, rtt_s, measured=measured, proxy_energy=proxy_energy)
    table = []
    grid = [(mbps, alive) for mbps in grid_mbps for alive in (True, False)]
    for mbps, alive in tqdm(grid, desc="best action per grid state", unit="state", disable=not progress,
                            leave=False):
        # With the peer down every cut runs locally: say so with the last cut.
        thresholds, cut, p = best_action(mbps * 1e6, alive, stats, cost, bounds, n_side, n_cuts,
                                         cuts=None if alive else [n_cuts - 1])
        table.append({"bandwidth_mbps": mbps, "peer_alive": alive, "thresholds": list(thresholds), "cut": cut,
                      "sr": round(p.sr, 4), "accuracy": round(p.accuracy, 4), "latency_s": round(p.latency_s, 5),
                      "energy": round(p.energy, 3)})
    # Unbounded energy: the feature still varies during the fit (so it learns to ignore it), over the table's range.
    energy_scale = energy_bound if math.isfinite(energy_bound) else max(1.0, max(r["energy"] for r in table))
    rng = np.random.RandomState(seed)
    xs, ys = [], []
    for row in table:
        for _ in range(40):
            mbps = row["bandwidth_mbps"] * math.exp(rng.uniform(-grid_step / 2, grid_step / 2))
            xs.append([rng.uniform(0, 2 * latency_bound_s), rng.uniform(0, 2 * energy_scale), mbps,
                       1.0 if row["peer_alive"] else 0.0])
            ys.append(_targets(row["thresholds"], row["cut"]))
    x, y = np.array(xs), np.array(ys)
    # The bandwidth feature enters as itself (policies_lite normalises linearly); the grid is log-spaced,
    # so samples are weighted towards low bandwidths where the decisions change.
    layers, mean, std = fit_mlp(x, y, seed=seed, steps=fit_steps, progress=progress)
    decoder = edgeml_decoder(n_side, n_cuts, max_interval=5, thresholds="sigmoid", scale="index")
    neuro = best_static_cut(cost, mean_bandwidth_bps, stats, bounds)
    single_t, single_cut = best_static_single_threshold(
        bandwidth_samples_bps if bandwidth_samples_bps is not None else [mean_bandwidth_bps], stats, cost, bounds,
        n_side, n_cuts)
    provenance = {
        "traces": [],
        "algorithm": "grid search over (cut, per-exit thresholds) per (bandwidth, peer_alive) with the planner's "
                     "cost model, then a 4-32-32-%d tanh MLP fitted by Adam (torch, CPU, float64); see codegen/policy_build.py"
                     % (n_side + 2),
        "procedure": "codegen/policy_build.py (edgesplit build-policy)",
        "bundle": manifest.name, "bundle_sha256": bundle.hash, "board": board, "board_emulated": True,
        "workload_scale": workload_scale, "latency_bound_s": latency_bound_s,
        "energy_bound": energy_bound if math.isfinite(energy_bound) else None,
        "energy_unit": "mJ", "energy_proxy": "emulated", "rtt_s": rtt_s, "images": images_source, "seed": seed,
        "bandwidth_grid_mbps": [grid_mbps[0], grid_mbps[-1]],
        "bandwidth_uncertainty_factors": list(BANDWIDTH_UNCERTAINTY),
        "accuracy_allowance": POLICY_ACCURACY_ALLOWANCE,
        "static_baselines": {
            "profiled_at_bandwidth_mbps": mean_bandwidth_bps / 1e6,
            "neurosurgeon": {"cut": neuro["cut"], "use_exits": False},
            "single_threshold": {"cut": single_cut, "threshold": single_t[0] if single_t else None},
        },
    }
    provenance.update(extra_provenance or {})
    if measured is not None:  # only then: a policy built from the MACs model keeps its documented provenance
        provenance.update(SegmentTimes(load_emulated_board(board), workload_scale, measured).describe())
    if proxy_energy:  # the live board's own energy input: 'serve' on that board checks unit and proxy
        reading = measured["energy"]
        provenance.update({
            "board_emulated": False, "energy_unit": reading["unit"], "energy_proxy": reading["proxy"],
            "energy_model": "(busy_mean x busy s + idle_mean x idle s) / task s of %s, measured by 'edgesplit "
                            "profile' on %s: busy %g %s, idle %g %s" % (
                                reading["proxy"], measured["board"], reading["busy_mean"], reading["unit"],
                                reading["idle_mean"], reading["unit"])})
    tmp = out.with_name(out.name + ".unchecked.npz")
    save_policy(tmp, features=list(EDGEML_FEATURES), layers=layers, activations=["tanh", "tanh", "identity"],
                decoder=decoder, mean=mean.tolist(), std=std.tolist(), provenance=provenance)
    policy = load_policy(tmp)
    agree, sr_loss = 0, []
    for row in table:
        state = {"latency_mean_s": latency_bound_s / 2, "energy_mean": energy_scale / 2,
                 "bandwidth_mbps": row["bandwidth_mbps"], "peer_alive": 1.0 if row["peer_alive"] else 0.0}
        action = policy.decide_from(state)
        p = robust_predict(action.thresholds, action.cut, row["bandwidth_mbps"] * 1e6, row["peer_alive"], stats,
                    cost, bounds)
        sr_loss.append(row["sr"] - p.sr)
        agree += int(action.cut == row["cut"])
    # Between the grid points: the decoded cut against the nearest grid point's, on a fine sweep.
    alive_rows = [row for row in table if row["peer_alive"]]
    grid_log = np.log([row["bandwidth_mbps"] for row in alive_rows])
    sweep = np.geomspace(grid_mbps[0], grid_mbps[-1], 400)
    sweep_agree = 0
    for mbps in sweep:
        nearest = alive_rows[int(np.argmin(np.abs(grid_log - math.log(mbps))))]
        action = policy.decide_from({"latency_mean_s": latency_bound_s / 2, "energy_mean": energy_scale / 2,
                                     "bandwidth_mbps": float(mbps), "peer_alive": 1.0})
        sweep_agree += int(action.cut == nearest["cut"])
    tmp.unlink()
    check = {"grid_points": len(table), "cut_agreement": agree / float(len(table)),
             "sweep_points": len(sweep), "sweep_cut_agreement": sweep_agree / float(len(sweep)),
             "mean_sr_loss_vs_table": float(np.mean(sr_loss)), "max_sr_loss_vs_table": float(np.max(sr_loss))}
    if check["cut_agreement"] < 0.9:
        raise InputError("the fitted policy picks the table's cut on only %.0f%% of the grid: not saved"
                         % (100 * check["cut_agreement"]))
    provenance["grid_check"] = check
    from edgesplit.codegen.policy_output import write_failed

    try:
        policy_id = save_policy(out, features=list(EDGEML_FEATURES), layers=layers, activations=["tanh", "tanh", "identity"],
                                decoder=decoder, mean=mean.tolist(), std=std.tolist(), provenance=provenance)
    except OSError as exc:
        raise write_failed(out, exc) from None
    return {"out": str(out), "policy_id": policy_id, "check": check, "table": table,
            "static_baselines": provenance["static_baselines"]}
