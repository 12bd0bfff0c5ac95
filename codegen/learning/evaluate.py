"""Every strategy on the same recording: the trained policy, the baselines and the hindsight oracle.

``evaluate_in_environment`` runs them in the virtual-time environment (several seeds: the seed draws
the inputs); ``evaluate_real`` runs them through real processes (a peer subprocess, one emulated device
per strategy behind a software link replaying the recording: ``edgesplit demo``'s machinery), the
seed shuffling the order of the inputs. Both return one row per strategy with the mean over seeds and
the spread (population standard deviation) of SR, accuracy, mean latency and reward.
"""
import logging
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from edgesplit.codegen.learning.baselines import (ACCURACY_ALLOWANCE, Profiling, ablations, oracle_actions,
                                                   run_oracle, static_baselines)
from edgesplit.runtime.controller.strategies import EnergyInput, PolicyStrategy, Strategy, load_policy_strategy

log = logging.getLogger(__name__)

METRICS = ("sr", "accuracy", "mean_latency_ms", "reward", "fallbacks")


@dataclass
class Lineup:
    """The strategies of one evaluation, in the table's order (``policy`` is the evaluated one)."""

    strategies: List[Strategy]


def load_policy_for(path, features: Sequence[str], n_exits: int, n_cuts: int, name: str) -> PolicyStrategy:
    """A frozen EdgeML policy whose features the environment supplies, whose decoder fits the bundle and whose energy
    input is the emulated board's (mJ), as run and demo check it: a policy built on another reading is refused."""
    energy = EnergyInput("emulated", "mJ", "the environment's emulated board")
    return load_policy_strategy(path, n_exits, n_cuts, name, features=features, energy=energy)


def lineup(profiling: Profiling, policy: PolicyStrategy, planner: Optional[PolicyStrategy],
           moea_seed: int = 0) -> Lineup:
    """Baselines (static, then the planner policy, then EdgeML's ablations of ``policy``), then ``policy`` last."""
    chosen = static_baselines(profiling, moea_seed=moea_seed)
    if planner is not None:
        chosen.append(planner)
    chosen.extend(ablations(policy))
    chosen.append(policy)
    return Lineup(chosen)


def aggregate(name: str, per_seed: List[Dict[str, Any]], seeds: Sequence[int], **extra) -> Dict[str, Any]:
    """Mean over seeds of every metric, its spread (``<metric>_std``) and the per-seed values."""
    row = {"strategy": name}  # type: Dict[str, Any]
    for key in METRICS:
        values = [r[key] for r in per_seed if r.get(key) is not None]
        row[key] = float(np.mean(values)) if values else None
        row[key + "_std"] = float(np.std(values)) if values else None
    row["tasks"] = int(sum(r["tasks"] for r in per_seed))
    row["seeds"] = list(seeds)
    row["per_seed"] = per_seed
    row.update(extra)
    return row


def episode_row(episode) -> Dict[str, Any]:
    return {"sr": float(episode.sr), "accuracy": float(episode.accuracy),
            "mean_latency_ms": float(episode.mean_latency_ms), "reward": float(episode.reward),
            "fallbacks": int(episode.fallbacks), "tasks": int(episode.tasks)}


def evaluate_in_environment(env, chosen: Lineup, seeds: Sequence[int], oracle: bool = True,
                            progress: Optional[Callable[[str], None]] = None) -> List[Dict[str, Any]]:
    """Each strategy (and the oracle) on the environment's recording, once per seed; rows in lineup order."""
    rows = []
    total = len(chosen.strategies) + int(oracle)
    for i, strategy in enumerate(chosen.strategies):
        per_seed = []
        for seed in seeds:
            per_seed.append(episode_row(env.run(strategy, seed=seed)))
        if progress:
            progress("%d/%d %s done (%d seed%s)"
                     % (i + 1, total, strategy.name, len(seeds), "" if len(seeds) == 1 else "s"))
        rows.append(aggregate(strategy.name, per_seed, seeds, description=strategy.describe()))
    if oracle:
        static = [s.action for s in chosen.strategies if hasattr(s, "action")]
        candidates = oracle_actions(env.n_exits, env.n_cuts, extra=static)
        per_seed = [episode_row(run_oracle(env, candidates, seed=seed)) for seed in seeds]
        if progress:
            progress("%d/%d oracle done (%d actions tried per window)" % (total, total, len(candidates)))
        rows.append(aggregate("oracle", per_seed, seeds, upper_bound=True,
                              description={"name": "oracle", "note": "hindsight per action window: every one of "
                                           "%d actions tried on a clone of the environment, the best window "
                                           "kept; sees the future, NOT deployable: an upper bound" % len(candidates)}))
    return rows


SR_TIE = 1e-9  # SRs closer than this are equal (means over seeds of the same counts, summed in another order)


def verdict(rows: List[Dict[str, Any]], allowance: float = ACCURACY_ALLOWANCE) -> Dict[str, Any]:
    """How the evaluated policy (the ``policy`` row) stands against every non-oracle strategy, two ways.

    Strict: its SR against every other non-oracle row. Within the allowance: only rows whose accuracy is
    within ``allowance`` of the most accurate non-oracle row other than the policy compete, and the policy must
    be within it too. The strict answer alone rewards giving accuracy away (the policy's own EdgeML-TL
    ablation, or "exit 0 always", meets the bounds nearly always a few accuracy points down).
    """
    policy = next(r for r in rows if r["strategy"] == "policy")
    sr = policy["sr"]
    others = [r for r in rows if r["strategy"] != "policy" and not r.get("upper_bound")]
    best = max(others, key=lambda r: r["sr"])
    most_accurate = max(others, key=lambda r: r["accuracy"])
    floor = most_accurate["accuracy"] - allowance
    eligible = [r for r in others if r["accuracy"] >= floor - 1e-12]
    best_eligible = max(eligible, key=lambda r: r["sr"])  # the most accurate row is always eligible
    within = policy["accuracy"] >= floor - 1e-12
    # A tie counts as the highest (a tie is not a loss); the rows it ties with are named. SRs are means over seeds:
    # equal ones summed in another order can differ in the last bits, so "equal" is within SR_TIE.
    tied = [r["strategy"] for r in others if abs(r["sr"] - sr) <= SR_TIE]
    return {"policy_sr_highest": all(sr >= r["sr"] - SR_TIE for r in others),
            "best_baseline": best["strategy"], "best_baseline_sr": best["sr"],
            "policy_sr_minus_best_baseline_points": round(100 * (policy["sr"] - best["sr"]), 2),
            "most_accurate_baseline": most_accurate["strategy"],
            "policy_accuracy_gap_points": round(100 * (most_accurate["accuracy"] - policy["accuracy"]), 2),
            "accuracy_allowance_points": round(100 * allowance, 2), "accuracy_floor": round(floor, 6),
            "eligible_baselines": [r["strategy"] for r in eligible],
            "policy_within_allowance": within,
            "best_eligible_baseline": best_eligible["strategy"], "best_eligible_baseline_sr": best_eligible["sr"],
            "policy_sr_minus_best_eligible_points": round(100 * (policy["sr"] - best_eligible["sr"]), 2),
            "policy_sr_highest_within_allowance": within and all(sr >= r["sr"] - SR_TIE for r in eligible),
            "tied_with_policy_sr": tied,
            "tied_with_policy_sr_within_allowance": [r["strategy"] for r in eligible if r["strategy"] in tied],
            "policy_accuracy": policy["accuracy"], "strategies_compared": len(others),
            "strategies_below_policy_sr": sum(1 for r in others if r["sr"] < sr - SR_TIE)}


SEED_VERDICT_KEYS = ("policy_sr_highest", "policy_within_allowance", "policy_sr_highest_within_allowance",
                     "best_eligible_baseline", "policy_sr_minus_best_eligible_points", "most_accurate_baseline",
                     "policy_accuracy_gap_points")


def seed_verdicts(rows: List[Dict[str, Any]], allowance: float = ACCURACY_ALLOWANCE) -> List[Dict[str, Any]]:
    """The verdict on each evaluation seed's run alone (``SEED_VERDICT_KEYS`` of it, and ``seed_index``).

    ``verdict`` reads the means over seeds; a row near the allowance's edge can be inside it on one run and outside
    on another, so a standing that holds on the means may not hold run by run. Every row must have ``per_seed``
    values for the same number of seeds (as ``aggregate`` makes them); rows without any give an empty list."""
    counts = [(r["strategy"], len(r["per_seed"])) for r in rows if r.get("per_seed")]
    if not counts:
        return []
    if len(counts) != len(rows) or len({n for _, n in counts}) != 1:
        raise ValueError("every row needs per-seed values for the same seeds: %s"
                         % ", ".join("%s %d seed(s)" % (name, n) for name, n in
                                     [(r["strategy"], len(r.get("per_seed") or ())) for r in rows]))
    found = []
    for i in range(counts[0][1]):
        run = [{"strategy": r["strategy"], "sr": r["per_seed"][i]["sr"], "accuracy": r["per_seed"][i]["accuracy"],
                "upper_bound": r.get("upper_bound", False)} for r in rows]
        v = verdict(run, allowance)
        found.append(dict({"seed_index": i}, **{key: v[key] for key in SEED_VERDICT_KEYS}))
    return found


def seed_verdict_line(per_seed: List[Dict[str, Any]]) -> str:
    """``seed_verdicts`` in one sentence, as ``evaluate`` prints it under the verdict."""
    n = len(per_seed)
    won = sum(1 for v in per_seed if v["policy_sr_highest_within_allowance"])
    within = sum(1 for v in per_seed if v["policy_within_allowance"])
    below = {}  # type: Dict[str, int]
    for v in per_seed:
        if v["policy_within_allowance"] and not v["policy_sr_highest_within_allowance"]:
            below[v["best_eligible_baseline"]] = below.get(v["best_eligible_baseline"], 0) + 1
    rest = ["below %s on %d" % (name, count) for name, count in sorted(below.items())]
    if within < n:
        rest.append("outside the allowance on %d" % (n - within))
    return ("run by run (each evaluation seed alone): the highest SR within the allowance on %d of %d%s"
            % (won, n, "; " + ", ".join(rest) if rest else ""))


# Student's t, one-sided 5 %: the critical value for df degrees of freedom (a df between two rows takes the lower row's,
# which is slightly higher than the exact value, by up to 0.014: a lead must be that much clearer to count; beyond 120
# the 120 row's).
_T_95 = ((1, 6.314), (2, 2.920), (3, 2.353), (4, 2.132), (5, 2.015), (6, 1.943), (7, 1.895), (8, 1.860), (9, 1.833),
         (10, 1.812), (11, 1.796), (12, 1.782), (13, 1.771), (14, 1.761), (15, 1.753), (16, 1.746), (17, 1.740),
         (18, 1.734), (19, 1.729), (20, 1.725), (21, 1.721), (22, 1.717), (23, 1.714), (24, 1.711), (25, 1.708),
         (26, 1.706), (27, 1.703), (28, 1.701), (29, 1.699), (30, 1.697), (40, 1.684), (60, 1.671), (120, 1.658))
FEW_RUNS = 5  # below this many runs a paired test tells little, and a lead equal on every run is not a finding
# (every run ahead has probability 0.5 ** n by chance: above 5 % for n < 5)
_SAME_DIFFERENCE = 1e-9  # per-run SR differences closer than this are equal (SR moves in steps of one task)


def critical_t(df: int) -> float:
    """Student's t at 95 % (one-sided) for ``df`` degrees of freedom, from a table (no scipy on the workstation's list)."""
    if df < 1:
        raise ValueError("a t-test needs at least 1 degree of freedom, got %d" % df)
    return [t for d, t in _T_95 if d <= df][-1]


def _paired(rows: List[Dict[str, Any]]) -> bool:
    """Every row ran on the same seeds (where rows name them; ``aggregate``'s do, the benches' copies may not)."""
    named = [tuple(r["seeds"]) for r in rows if r.get("seeds") is not None]
    return len(set(named)) <= 1


def paired_verdict(rows: List[Dict[str, Any]], allowance: float = ACCURACY_ALLOWANCE) -> Optional[Dict[str, Any]]:
    """Whether any strategy *beats* the policy, more than another draw of the same evaluation would undo.

    Rows within the allowance (by their means, as ``verdict``) that have more SR than the policy on the means are
    each tested: a one-sided paired t-test at 5 % over the evaluation seeds' runs (a seed draws the same inputs from
    the same recording for every strategy, so the per-run differences are paired). A lead the test does not find is
    a tie. A lead equal on every run has no spread and no t (``t`` None, ``zero_spread``): it counts when every run
    being ahead is itself unlikely by chance (0.5 ** runs under 5 %: five runs or more), as a sign test says. The
    policy **holds** when it is within the allowance and no lead is significant. Needs every row's ``per_seed`` values
    on the same two or more seeds (None otherwise)."""
    try:
        runs = seed_verdicts(rows, allowance)
    except (KeyError, ValueError):
        return None
    if len(runs) < 2 or not _paired(rows):
        return None
    n = len(runs)
    means = verdict(rows, allowance)
    policy = next(r for r in rows if r["strategy"] == "policy")
    t_needed = critical_t(n - 1)
    leads = []
    for r in rows:
        if r["strategy"] not in means["eligible_baselines"] or r["sr"] <= policy["sr"] + SR_TIE:
            continue
        diffs = np.array([a["sr"] - b["sr"] for a, b in zip(r["per_seed"], policy["per_seed"])])
        lead = {"strategy": r["strategy"], "lead_points": round(100 * float(np.mean(diffs)), 3)}
        if float(np.ptp(diffs)) <= _SAME_DIFFERENCE:
            lead.update(standard_error_points=0.0, t=None, zero_spread=True, significant=n >= FEW_RUNS)
        else:
            error = float(np.std(diffs, ddof=1) / np.sqrt(n))
            t = float(np.mean(diffs) / error)
            lead.update(standard_error_points=round(100 * error, 3), t=round(t, 3), zero_spread=False,
                        significant=t > t_needed)
        leads.append(lead)
    leads.sort(key=lambda lead: -lead["lead_points"])
    beaten_by = [lead["strategy"] for lead in leads if lead["significant"]]
    return {"test": "one-sided paired t-test at 5 %", "runs": n, "critical_t": t_needed,
            "policy_within_allowance": means["policy_within_allowance"], "leads": leads, "beaten_by": beaten_by,
            "policy_holds": bool(means["policy_within_allowance"] and not beaten_by)}


def paired_verdict_line(v: Dict[str, Any]) -> str:
    """``paired_verdict`` in one sentence, as ``evaluate`` prints it under the run-by-run line."""
    head = "paired test over %d runs: " % v["runs"]
    few = ("; %d runs tell little (--seeds 10 tells a lead of a few tenths of a point from the draw)" % v["runs"]
           if v["runs"] < FEW_RUNS else "")

    def t_of(x: Dict[str, Any]) -> str:
        return "the same lead on every run" if x["t"] is None else "t %.1f" % x["t"]

    if not v["policy_within_allowance"]:
        return head + "the policy is outside the allowance, so it does not hold"
    if v["beaten_by"]:
        return (head + "the policy is beaten by " + ", ".join(
            "%s (%+.2f points, %s)" % (x["strategy"], x["lead_points"],
                                       t_of(x) if x["t"] is None else "t %.1f > %.2f" % (x["t"], v["critical_t"]))
            for x in v["leads"] if x["significant"]))
    if v["leads"]:
        return (head + "the policy holds: no lead within the allowance is significant at 5 %% (t <= %.2f): %s%s"
                % (v["critical_t"], ", ".join("%s %+.2f points (%s)" % (x["strategy"], x["lead_points"], t_of(x))
                                              for x in v["leads"]), few))
    return head + "the policy holds: no strategy within the allowance has more SR" + few


def verdict_lines(v: Dict[str, Any]) -> List[str]:
    """The verdict in two sentences (strict; within the allowance), as ``evaluate`` prints them under its table."""
    n = v["strategies_compared"]
    if v["policy_sr_highest"] and v.get("tied_with_policy_sr"):
        strict = ("policy: SR the highest of the %d other non-oracle strategies, tied with %s"
                  % (n, ", ".join(v["tied_with_policy_sr"])))
    elif v["policy_sr_highest"]:
        strict = ("policy: SR the highest of the %d other non-oracle strategies (next %s, %+.2f points)"
                  % (n, v["best_baseline"], v["policy_sr_minus_best_baseline_points"]))
    else:
        strict = ("policy: SR not the highest: %s is above it (%+.2f points); the policy is above %d of the %d others"
                  % (v["best_baseline"], v["policy_sr_minus_best_baseline_points"], v["strategies_below_policy_sr"], n))
    strict += ("; accuracy %.2f points below the most accurate baseline (%s)"
               % (v["policy_accuracy_gap_points"], v["most_accurate_baseline"]))
    head = ("within %.1f accuracy points of the most accurate (accuracy >= %.1f %%): "
            % (v["accuracy_allowance_points"], 100 * v["accuracy_floor"]))
    eligible = len(v["eligible_baselines"])
    if not v["policy_within_allowance"]:
        within = (head + "policy OUTSIDE (%.1f %% < %.1f %%): not eligible; the best eligible strategy is %s (the policy's "
                  "SR %+.2f points against it)" % (100 * v["policy_accuracy"], 100 * v["accuracy_floor"],
                                                  v["best_eligible_baseline"], v["policy_sr_minus_best_eligible_points"]))
    elif v["policy_sr_highest_within_allowance"] and v.get("tied_with_policy_sr_within_allowance"):
        within = (head + "policy within; SR the highest of the %d eligible strategies, tied with %s"
                  % (eligible, ", ".join(v["tied_with_policy_sr_within_allowance"])))
    elif v["policy_sr_highest_within_allowance"]:
        within = (head + "policy within; SR the highest of the %d eligible strategies (next %s, %+.2f points)"
                  % (eligible, v["best_eligible_baseline"], v["policy_sr_minus_best_eligible_points"]))
    else:
        within = (head + "policy within; SR not the highest of the %d eligible: %s is above it (%+.2f points)"
                  % (eligible, v["best_eligible_baseline"], v["policy_sr_minus_best_eligible_points"]))
    return [strict, within]
