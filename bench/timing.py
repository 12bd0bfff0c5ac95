"""Micro-benchmark timing shared by the bench scripts (``python bench/X.py`` puts bench/ on sys.path)."""
import timeit


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
