"""Start-up time of ``edgesplit serve`` with the embedded bundle: fork to READY=1 (sd_notify) and to the
first answered request, over several runs. Prints JSON.

    python bench/daemon_startup.py [--runs 5]
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
from edgesplit.runtime.api.client import ApiClient


def one_run(work: Path) -> dict:
    notify = work / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(notify))
    listener.settimeout(30)
    config = work / "edgesplit.toml"
    config.write_text('[model]\nboard = "x86_cpu"\n[traces]\npath = "%s"\n[api]\nsocket = "%s"\n'
                      % (work / "traces.db", work / "api.sock"))
    env = dict(os.environ, NOTIFY_SOCKET=str(notify), PYTHONPATH=str(ROOT))
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "edgesplit.runtime.cli", "serve", "--config", str(config)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while b"READY=1" not in listener.recv(4096):
            pass
        ready = time.perf_counter() - started
        with ApiClient(str(work / "api.sock")) as client:
            assert client.submit(np.zeros((1, 1, 28, 28), dtype=np.float32)).ok
            status = client.status()
        first = time.perf_counter() - started
    finally:
        proc.terminate()
        proc.wait(30)
        listener.close()
    return {"ready_s": ready, "first_answer_s": first, "self_reported_startup_s": status["startup_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    runs = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="es-bench-") as work:
            runs.append(one_run(Path(work)))
    summary = {key: {"median": round(statistics.median(r[key] for r in runs), 3),
                     "max": round(max(r[key] for r in runs), 3)} for key in runs[0]}
    print(json.dumps({"benchmark": "daemon_startup", "python": sys.version.split()[0], "runs": args.runs,
                      "cpus": os.cpu_count(), **summary}))


if __name__ == "__main__":
    main()
