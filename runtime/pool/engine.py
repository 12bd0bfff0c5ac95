"""The Ray Serve side of the pool: join a Ray cluster, deploy (or find) a bundle's replicas, call them.

One Serve application per bundle, named after its wire hash, holds one deployment of
``SegmentReplica``. The first front end to start deploys it with ``replicas`` replicas; the others
find it running and share it (they never redeploy it, which would restart its replicas). Ray Serve routes each call to a replica with room (``max_ongoing_requests``),
health-checks the replicas and starts a new one when one dies; a call that was on a dying replica
fails, and ``PoolEngine.call`` sends it once more to another replica if the request's deadline allows.
"""
import asyncio
import logging
from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np

from edgesplit.runtime.errors import InputError
from edgesplit.runtime.pool.replica import SegmentReplica

log = logging.getLogger(__name__)

DEPLOYMENT = "segments"
NAMESPACE = "edgesplit"


class ReplicaLost(Exception):
    """The replica running a call died (or was unreachable) and no other could take it in time."""


class PoolBusy(Exception):
    """Ray Serve refused the call: every replica is at ``max_ongoing_requests`` and the handle's queue is full."""


def app_name(wire_hash: str) -> str:
    return "edgesplit-" + wire_hash[:16]


def _modules():
    try:
        import ray
        from ray import serve
    except ImportError as exc:
        raise InputError("the pool runs on Ray Serve, which is not installed here (%s): pip install "
                         "'edgesplit[pool]' on the server (never needed on a board)" % exc) from None
    return ray, serve


REACH_TIMEOUT_S = 5.0


def check_reachable(address: str, timeout_s: float = REACH_TIMEOUT_S) -> None:
    """A cluster address HOST:PORT must accept a TCP connection before Ray is asked to join it: ``ray.init`` keeps
    retrying an address where nothing listens, for minutes, ignoring Ctrl-C. ``auto`` and ``ray://`` addresses are
    left to Ray."""
    import socket

    host, _, port = address.rpartition(":")
    if not host or "://" in address or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise InputError("cannot join the Ray cluster at %s: nothing answers there (%s): start one with 'ray start "
                         "--head --port %s' on that machine, or give the address 'ray start' printed (or 'auto' on a "
                         "node of the cluster)" % (address, exc.strerror or exc, port)) from None


class PoolEngine:
    """A connection to a Ray cluster and the handle of one bundle's replicas."""

    def __init__(self, address: str):
        self.ray, self.serve = _modules()
        check_reachable(address)
        try:
            self.ray.init(address=address, namespace=NAMESPACE, logging_level=logging.WARNING,
                          log_to_driver=False)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise InputError("cannot join the Ray cluster at %s: %s (start one with 'ray start --head' and give its "
                             "address, or 'auto' on a node of the cluster)" % (address, exc)) from None
        self.handle = None
        self.app = ""
        self.joined = False  # deploy found the application running (its replica count is not this front end's)
        self._lost_errors = tuple(getattr(self.ray.exceptions, name) for name in
                                  ("RayActorError", "ActorUnavailableError", "WorkerCrashedError")
                                  if hasattr(self.ray.exceptions, name))
        busy = getattr(self.serve.exceptions, "BackPressureError", None)
        self._busy_errors = (busy,) if busy is not None else ()

    def deploy(self, bundle: str, wire_hash: str, replicas: int, threads: Optional[int] = 1,
               replica_cpus: float = 1.0, max_ongoing_requests: int = 64, deployment=SegmentReplica,
               application: Optional[str] = None) -> Dict[str, Any]:
        """Find the bundle's application (``application``, by default ``app_name(wire_hash)``), or deploy it;
        returns what a replica says about itself."""
        serve = self.serve
        serve.start(proxy_location="Disabled")  # devices speak ZeroMQ to the front ends, not HTTP
        name = self.app = application or app_name(wire_hash)
        self.joined = name in serve.status().applications
        if self.joined:
            log.info("joining the running application %s", name)
            self.handle = serve.get_deployment_handle(DEPLOYMENT, app_name=name)
        else:
            log.info("deploying %s: %d replicas of bundle %s", name, replicas, bundle)
            app = serve.deployment(deployment, name=DEPLOYMENT).options(
                num_replicas=replicas, max_ongoing_requests=max_ongoing_requests,
                # A dead replica is noticed by the controller within seconds (Serve's default is 10 s).
                health_check_period_s=2.0, health_check_timeout_s=10.0,
                ray_actor_options={"num_cpus": replica_cpus}).bind(bundle, threads)
            self.handle = serve.run(app, name=name, route_prefix=None)
        described = self.handle.describe.remote().result()
        if described["wire_hash"] != wire_hash:
            raise InputError("the pool's replicas serve bundle %s, this front end %s: load the same bundle (the same "
                             "path on every node)" % (described["wire_hash"], wire_hash))
        return described

    def replicas(self) -> int:
        """Replicas of this bundle's deployment that Ray Serve reports running."""
        app = self.serve.status().applications.get(self.app)
        deployment = app.deployments.get(DEPLOYMENT) if app is not None else None
        return int(deployment.replica_states.get("RUNNING", 0)) if deployment is not None else 0

    async def call(self, cut: int, tensors: Mapping[str, np.ndarray], thresholds: Optional[Sequence[float]],
                   use_exits: bool, timeout_s: float, loop_clock) -> Dict[str, Any]:
        """The replica's answer; ``asyncio.TimeoutError`` after ``timeout_s``, ``ReplicaLost``, ``PoolBusy``."""
        until = loop_clock() + timeout_s
        attempts = 0
        while True:
            attempts += 1
            response = self.handle.run.remote(cut, dict(tensors), thresholds, use_exits)
            try:
                return await asyncio.wait_for(_awaited(response), max(0.0, until - loop_clock()))
            except (asyncio.TimeoutError, asyncio.CancelledError):  # late, or given up by the front end
                response.cancel()
                raise
            except self._busy_errors as exc:
                raise PoolBusy(str(exc)) from None
            except self._lost_errors as exc:
                # The replica died under this call; Serve routes the next one to a live replica.
                if attempts >= 2 or loop_clock() >= until:
                    raise ReplicaLost("%s (%d attempts)" % (type(exc).__name__, attempts)) from None
                log.info("a replica was lost during a call (%s); sending it to another", type(exc).__name__)

    def serve_problem(self) -> str:
        """What Ray Serve's own status says is wrong with the application, "" when nothing: deleted, being deleted, or
        no replica running. Cheap: the controller's status, no call to a replica. Raises when Serve cannot be read."""
        app = self.serve.status().applications.get(self.app)
        if app is None:
            return "Ray Serve has no application %s (it was deleted)" % self.app
        if str(getattr(app.status, "value", app.status)) == "DELETING":
            return "Ray Serve is deleting the application %s" % self.app
        deployment = app.deployments.get(DEPLOYMENT)
        if deployment is None or int(deployment.replica_states.get("RUNNING", 0)) == 0:
            return "Ray Serve runs no replica of %s (every replica is starting again)" % self.app
        return ""

    async def status_problem(self) -> str:
        """``serve_problem`` off the event loop; "" when Serve's status cannot be read (the caller's slower check
        tells)."""
        try:
            return await asyncio.get_event_loop().run_in_executor(None, self.serve_problem)
        except Exception as exc:  # the controller unreachable: check's describe call says the same, slower
            log.debug("Serve's status could not be read: %s: %s", type(exc).__name__, exc)
            return ""

    async def check(self, timeout_s: float) -> str:
        """A health call: ``""`` when a replica answers ``describe`` within ``timeout_s``, else what went wrong
        (no replica, a deleted application, a broken Ray connection). Serve's own status is read first
        (``status_problem``): an application deleted, being deleted or with no replica running is told at once rather
        than after ``timeout_s``."""
        problem = await self.status_problem()
        if problem:
            return problem
        try:
            response = self.handle.describe.remote()
        except Exception as exc:  # Ray raises many types here; each one means no replica can be reached
            return "%s: %s" % (type(exc).__name__, exc)
        try:
            await asyncio.wait_for(_awaited(response), timeout_s)
        except asyncio.TimeoutError:
            response.cancel()
            return "no replica answered a health call within %.1f s" % timeout_s
        except Exception as exc:
            return "%s: %s" % (type(exc).__name__, exc)
        return ""

    def close(self) -> None:
        self.ray.shutdown()


async def _awaited(response):
    return await response
