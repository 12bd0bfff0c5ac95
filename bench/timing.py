"""Micro-benchmark timing shared by the bench scripts (``python bench/X.py`` puts bench/ on sys.path)."""
import statistics
import timeit
from typing import Dict, List


def add_timing_arguments(parser) -> None:
    parser.add_argument("--number", type=int, default=20000, help="calls per timed round")
    parser.add_argument("--repeat", type=int, default=7, help="rounds; the best round counts")


def measure(candidates, number: int, repeat: int):
    """Best microseconds per call of each candidate, rounds interleaved so drift hits all alike."""
    best = {name: float("inf") for name in candidates}
    for _ in range(repeat):
        for name, fn in candidates.items():
            seconds = timeit.timeit(fn, number=number)
            best[name] = min(best[name], seconds / number * 1e6)
    return best


def paired_ratio(samples: Dict[str, List[float]], top: str, bottom: str, digits: int = 3) -> Dict[str, float]:
    """top over bottom: the median of the per-round ratios (rounds alternated, so drift cancels), and of the minimums."""
    per_round = [a / b for a, b in zip(samples[top], samples[bottom])]
    return {"median_of_rounds": round(statistics.median(per_round), digits),
            "of_minimums": round(min(samples[top]) / min(samples[bottom]), digits)}
