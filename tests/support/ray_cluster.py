"""``edgesplit pool`` front ends as subprocesses, on a real local Ray cluster (``RayHead``)."""
import os
import signal
import sys
from typing import List, Optional, Sequence

from edgesplit.runtime.peer.process import PeerProcess
from edgesplit.runtime.pool.local_cluster import RAY, RayHead  # noqa: F401 (RayHead: for the tests)


def pool_command(bundle: str, ray_address: str, extra: Sequence[str] = ()) -> List[str]:
    return ([sys.executable, "-m", "edgesplit.runtime.cli", "pool", bundle, "--ray-address", ray_address,
             "--bind", "tcp://127.0.0.1:*", "--json"] + list(extra))


def start_front_end(bundle: str, ray_address: str, extra: Sequence[str] = (),
                    start_timeout_s: float = 180.0) -> PeerProcess:
    """An ``edgesplit pool`` front end: the same ready line and stop() as an ``edgesplit peer`` process."""
    argv = pool_command(bundle, ray_address, extra)
    return PeerProcess(bundle, launcher=lambda _: argv, start_timeout_s=start_timeout_s)


def stopped_line(front_end: PeerProcess, sig: int = signal.SIGTERM) -> Optional[dict]:
    """Stop a front end and return its ``stopped`` JSON line (stats, CPU seconds), if it printed one."""
    import json

    _, out, _ = front_end.stop(sig, timeout_s=30.0)
    for line in out.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("event") == "stopped":
            return record
    return None


def delete_application(ray_address: str, name: str) -> None:
    """``serve.delete(name)`` from a driver of its own: the application's replicas are stopped and gone."""
    import subprocess

    script = ("import ray; from ray import serve; ray.init(address=%r, namespace='edgesplit', log_to_driver=False); "
              "serve.delete(%r)" % (ray_address, name))
    subprocess.run([sys.executable, "-c", script], check=True, timeout=180, stdout=subprocess.DEVNULL)


def ray_installed() -> bool:
    try:
        import ray  # noqa: F401
        from ray import serve  # noqa: F401
    except ImportError:
        return False
    return os.path.exists(RAY)

