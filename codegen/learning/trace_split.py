"""The named split of the shared bandwidth recordings (``../shared/traces``) into training and held-out ones.

Policies are trained, and baselines chosen, on the training recordings; they are evaluated on the
held-out ones, which nothing is fitted to. The held-out set takes recordings from every family (3G
commutes, 4G/LTE, fixed broadband, cellular while walking), so a policy is judged on networks of each
kind it has not seen. The shipped recordings (``norway_car_3``, ``ghent_bus_0001`` = Ghent
``report_bus_0001``) are training recordings. The product never reads ``../shared``: only the
workstation experiments (``bench/evaluate_heldout.py``, training runs) resolve these names.
"""
from pathlib import Path
from typing import List, Tuple

# Paths relative to the shared traces folder.
HELD_OUT = (
    "norway_hsdpa_3g/norway_ferry_3",
    "norway_hsdpa_3g/norway_metro_3",
    "norway_hsdpa_3g/norway_tram_11",
    "ghent_4g/cooked/report_train_0002",
    "ghent_4g/cooked/report_foot_0002",
    "fcc_broadband/trace_214390_http---www.amazon.com",
    "multipath_wifi_cellular/8_5_cellular.csv",
    "multipath_wifi_cellular/13_5_cellular.csv",
)
# The folders whose recordings (every file but the provenance notes) make up the shared set.
FAMILIES = ("norway_hsdpa_3g", "ghent_4g/cooked", "fcc_broadband", "multipath_wifi_cellular")


def shared_traces_dir(repo_root: Path) -> Path:
    """``../shared/traces`` beside the repository (as CI lays it out)."""
    return (repo_root.parent / "shared" / "traces").resolve()


def split(traces_dir: Path) -> Tuple[List[Path], List[Path]]:
    """(training, held-out) recording files under ``traces_dir``; every held-out name must exist."""
    held = [traces_dir / name for name in HELD_OUT]
    missing = [str(p) for p in held if not p.is_file()]
    if missing:
        raise FileNotFoundError("held-out recordings missing under %s: %s" % (traces_dir, ", ".join(missing)))
    held_set = {p.resolve() for p in held}
    training = []
    for family in FAMILIES:
        folder = traces_dir / family
        training += [p for p in sorted(folder.iterdir())
                     if p.is_file() and p.suffix != ".md" and p.resolve() not in held_set]
    return training, held
