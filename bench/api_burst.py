"""A whole-process scenario for before/after timing with farm-bench: start ``edgesplit serve --local``
in a fresh folder, send N one-image submits through the API client one after another, stop the
daemon (SIGTERM: drain and flush), exit 0 only when every answer was ``ok`` and the daemon exited 0.

    farm-bench -n 5 -- .venv/bin/python bench/api_burst.py --tasks 3000 \\
        --vs 'env PYTHONPATH=/path/to/older/edgesplit .venv/bin/python bench/api_burst.py --tasks 3000'

Prints one JSON line (tasks, seconds spent submitting, microseconds per submit).
"""
import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from api_submit import ASSETS, start_daemon, stop_daemon

from edgesplit.runtime.api import ApiClient


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=3000)
    args = parser.parse_args(argv)
    images = np.load(str(ASSETS))["images"]
    work = Path(tempfile.mkdtemp(prefix="edgesplit-api-burst-"))
    proc = start_daemon(work)
    bad = 0
    try:
        with ApiClient(str(work / "api.sock")) as api:
            start = time.perf_counter()
            for i in range(args.tasks):
                bad += not api.submit(images[i % len(images)][None]).ok
            elapsed = time.perf_counter() - start
    finally:
        code = stop_daemon(proc)
    shutil.rmtree(str(work), ignore_errors=True)
    print(json.dumps({"tasks": args.tasks, "not_ok": bad, "daemon_exit_code": code, "submit_s": round(elapsed, 3),
                      "us_per_submit": round(1e6 * elapsed / args.tasks, 1)}))
    return 0 if bad == 0 and code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
