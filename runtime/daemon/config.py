"""The daemon's TOML config: a typed model validated by the same strict loader as the board configs.

An unknown key, a missing key, a wrong type or a value out of range is a ``DaemonConfigError`` naming
the file, the key and its line. Relative paths are relative to the config file's folder. Empty
strings mean "not set" (TOML has no null). Which keys SIGHUP can change without a restart is in
``RELOADABLE``; the others need ``systemctl restart``.
"""
import dataclasses
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, List, Tuple

from edgesplit.runtime.api.stream import MAX_SPIN_US
from edgesplit.runtime.boards.config import _build, _Context
from edgesplit.runtime.boards.toml_lines import find_line
from edgesplit.runtime.daemon.logs import LEVELS
from edgesplit.runtime.errors import EdgesplitError
from edgesplit.runtime.security.curve import is_loopback_endpoint
from edgesplit.runtime.shipped_policy import resolve_policy_path
from edgesplit.runtime.transport.endpoint import endpoint_problem

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.8-3.10 on the boards
    import tomli as tomllib


class DaemonConfigError(EdgesplitError):
    """The daemon config is malformed; the message names file, key and line."""


@dataclass(frozen=True)
class ModelSection:
    """What runs on the board."""

    bundle: str = ""  # bundle directory; "" = the embedded default bundle
    board: str = "auto"  # board config name (board_configs/NAME.toml), a .toml path, or "auto" (detect)
    policy: str = ""  # frozen policy .npz; "" = the bundle's default thresholds and [action]
    threads: int = 0  # onnxruntime intra-op threads per segment (0: by segment size)
    variants: Tuple[str, ...] = ()  # bundles of one task to choose among per request ("default": the embedded one)
    selector: str = ""  # how to choose among variants: "linucb" (needs two or more variants)


@dataclass(frozen=True)
class PeerSection:
    """The edge server that runs the rest of the model."""

    address: str = ""  # tcp://HOST:PORT of 'edgesplit peer' (several, comma-separated: failover in order); "" = local
    server_key: str = ""  # the peer's public key file (NAME.key): pinned, another key is refused
    device_key: str = ""  # this device's secret key file (NAME.key_secret, mode 0600)
    insecure: bool = False  # allow a non-loopback address without CurveZMQ (trusted networks only)


@dataclass(frozen=True)
class ActionSection:
    """The action used while no policy is loaded."""

    cut: int = -1  # cut to offload at; -1 = run locally to the end


@dataclass(frozen=True)
class BoundsSection:
    """The user's bounds (the policy's reward and the satisfaction figures use them)."""

    latency_ms: float = 0.0  # latency bound per task; 0 = the board config's default
    energy: float = 0.0  # bound on the board's energy proxy; 0 = the board config's default


TRACE_WRITERS = ("process", "thread")


@dataclass(frozen=True)
class TracesSection:
    """The durable trace database."""

    path: str = "/var/lib/edgesplit/traces.db"
    max_mb: float = 256.0  # size cap; the oldest rows go first
    batch_size: int = 64  # rows a power cut loses at most: the writer commits every half batch
    flush_interval_s: float = 1.0  # commit at least this often
    writer: str = "process"  # "process": SQLite in a child process, off the daemon's GIL; "thread": in the daemon


@dataclass(frozen=True)
class ApiSection:
    """The local API applications use."""

    socket: str = "/run/edgesplit/api.sock"  # ZeroMQ ipc socket path (owner/group only)
    group: str = ""  # group that may use the socket; "" = the daemon's own group
    queue_size: int = 64  # requests waiting at most; more are refused at once with 'queue_full'
    default_deadline_ms: float = 1000.0  # a request without a deadline gets this one
    max_input_mb: float = 16.0  # largest input accepted per request
    # After answering on the plain endpoint, a connection's thread looks for the client's next request without
    # sleeping for up to this long (while its requests come that soon): a core's time for a wake-up saved
    spin_us: float = 0.0


@dataclass(frozen=True)
class MetricsSection:
    """A Prometheus textfile (node_exporter's textfile collector reads it)."""

    path: str = ""  # e.g. /var/lib/edgesplit/metrics/edgesplit.prom; "" = off
    interval_s: float = 10.0


@dataclass(frozen=True)
class LinUCBSection:
    """The variant selector's learner (docs/bandit.md); used with [model] selector = "linucb"."""

    state: str = "/var/lib/edgesplit/linucb.json"  # learner state, saved after every rating; "" = not kept
    alpha: float = 1.5  # exploration weight
    delta: float = 0.1  # prior precision of theta
    lambda_eta: float = 0.4  # rating noise variance that does not shrink with the delay
    lambda_v_scale: float = 5.0  # plus lambda_v_scale / delay**lambda_v_power
    lambda_v_power: float = 2.0
    delay_unit_s: float = 1.0  # the delay of a rating is (seconds since the answer) / delay_unit_s


@dataclass(frozen=True)
class EmulationSection:
    """Serve as an EMULATED catalogue board (workstation try-outs and experiments, not a real board)."""

    board: str = ""  # board config to emulate: segments paced to its MACs model, energy from its power model (mJ); "" = off
    workload_scale: float = 1.0  # pace each segment as if it had this many times its MACs
    link: str = ""  # replay this bandwidth recording (file or shipped name) between the daemon and [peer] address
    link_scale: float = 1.0  # multiply the recording's rates
    rtt_ms: float = 20.0  # the software link's base RTT


@dataclass(frozen=True)
class DebugSection:
    """Hooks for tests only: never set in production."""

    allow_freeze: bool = False  # SIGUSR2 freezes the serving loop (proves the systemd watchdog)


@dataclass(frozen=True)
class DaemonConfig:
    log_level: str = "info"  # debug, info, warning, error
    model: ModelSection = field(default_factory=ModelSection)
    peer: PeerSection = field(default_factory=PeerSection)
    action: ActionSection = field(default_factory=ActionSection)
    bounds: BoundsSection = field(default_factory=BoundsSection)
    traces: TracesSection = field(default_factory=TracesSection)
    api: ApiSection = field(default_factory=ApiSection)
    metrics: MetricsSection = field(default_factory=MetricsSection)
    linucb: LinUCBSection = field(default_factory=LinUCBSection)
    emulation: EmulationSection = field(default_factory=EmulationSection)
    debug: DebugSection = field(default_factory=DebugSection)
    path: str = field(default="", metadata={"toml": False})

    def to_dict(self) -> Dict[str, Any]:
        data = dataclasses.asdict(self)
        data.pop("path")
        return data


# Keys SIGHUP applies to a running daemon; a change to any other key is logged and needs a restart.
RELOADABLE = ("log_level", "model.policy", "action.cut", "bounds.latency_ms", "bounds.energy",
              "api.default_deadline_ms", "metrics.interval_s")


class _DaemonContext(_Context):
    def fail(self, table, key, message):
        return DaemonConfigError(str(super().fail(table, key, message)))


def _resolve(base: str, path: str) -> str:
    return path if not path or os.path.isabs(path) else os.path.normpath(os.path.join(base, path))


def _socket_path(ctx: _Context, base: str, socket: str) -> str:
    resolved = _resolve(base, socket)
    size = len(resolved.encode("utf-8"))
    if size > 100:  # sockaddr_un holds 108 bytes with the NUL; libzmq refuses from 107
        raise ctx.fail(("api",), "socket", "%s is %d bytes, longer than the 100 a unix socket path may be: put "
                       "the config (or 'serve --local DIR') in a shorter folder, or give an absolute api.socket "
                       "such as /tmp/es/api.sock" % (resolved, size))
    return resolved


def parse_daemon_config(text: str, path: str) -> DaemonConfig:
    ctx = _DaemonContext(path, text)
    try:
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError, ValueError) as exc:  # deep nesting raises RecursionError
        raise DaemonConfigError("%s: not valid TOML: %s" % (path, exc or type(exc).__name__)) from None
    config = _build(ctx, (), data, DaemonConfig)
    _check(ctx, config)
    base = os.path.dirname(os.path.abspath(path))
    model = config.model
    if model.board.endswith(".toml"):
        model = dataclasses.replace(model, board=_resolve(base, model.board))
    return dataclasses.replace(
        config, path=path,
        model=dataclasses.replace(model, bundle=_resolve(base, model.bundle), policy=_resolve_policy(base, model.policy),
                                  variants=tuple(v if v == "default" else _resolve(base, v) for v in model.variants)),
        linucb=dataclasses.replace(config.linucb, state=_resolve(base, config.linucb.state)),
        emulation=_resolve_link(base, config.emulation),
        peer=dataclasses.replace(config.peer, server_key=_resolve(base, config.peer.server_key),
                                 device_key=_resolve(base, config.peer.device_key)),
        traces=dataclasses.replace(config.traces, path=_resolve(base, config.traces.path)),
        api=dataclasses.replace(config.api, socket=_socket_path(ctx, base, config.api.socket)),
        metrics=dataclasses.replace(config.metrics, path=_resolve(base, config.metrics.path)))


def _resolve_policy(base: str, policy: str) -> str:
    """A policy path is relative to the config; ``demo`` is the shipped demo policy unless the config's folder has a
    file of that name (resolved here, so the daemon's working folder never matters)."""
    return str(resolve_policy_path(policy, base)) if policy else policy


def _resolve_link(base: str, emulation: EmulationSection) -> EmulationSection:
    """A recording given as a path is relative to the config; a bare name is a shipped recording."""
    link = emulation.link
    if link and (os.sep in link or os.path.exists(os.path.join(base, link))):
        link = _resolve(base, link)
    return dataclasses.replace(emulation, link=link)


def load_daemon_config(path: str) -> DaemonConfig:
    try:
        with open(path, "rb") as handle:
            text = handle.read().decode("utf-8")
    except OSError as exc:
        raise DaemonConfigError("cannot read config %s: %s ('edgesplit serve --local DIR' writes a working one in "
                                "DIR; every key is in docs/daemon.md; systemd/install.sh installs the example as "
                                "/etc/edgesplit/edgesplit.toml)" % (path, exc.strerror or exc)) from None
    except UnicodeDecodeError as exc:
        raise DaemonConfigError("%s: not UTF-8 text: %s" % (path, exc)) from None
    return parse_daemon_config(text, path)


def key_location(config: DaemonConfig, table: str, key: str) -> str:
    """'FILE:LINE: key TABLE.KEY' for a problem found after parsing (on the machine, against the bundle);
    'FILE: key ...' when the key is not written in the file (a default) or the file cannot be read again."""
    line = None
    try:
        with open(config.path, encoding="utf-8") as handle:
            line = find_line(handle.read(), (table,), key)
    except (OSError, UnicodeDecodeError):
        pass
    return "%s: key %s.%s" % ("%s:%d" % (config.path, line) if line else config.path, table, key)


def _positive(ctx: _Context, table: Tuple[str, ...], key: str, value: float, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise ctx.fail(table, key, "must be %s, got %r" % ("zero or positive" if allow_zero else "positive", value))


PEER_DEFAULT_PORT = 5555  # 'edgesplit peer' binds tcp://0.0.0.0:5555 unless told otherwise


def _address_hint(address: str) -> str:
    """'; write ...' with a peer address that parses, PORT standing for a port the user must fill in."""
    if "://" in address and not address.startswith("tcp://"):
        return ""  # another scheme: the problem already names the two that work
    rest = address[len("tcp://"):] if address.startswith("tcp://") else address
    host, sep, port = rest.rpartition(":")
    if not sep:
        host, port = port, ""
    if not host:
        return ""
    if port.isdigit() and 1 <= int(port) <= 65535:
        return "; write %r" % ("tcp://%s:%s" % (host, port))
    return ("; write %r, PORT being the port 'edgesplit peer' listens on (its --bind, %d by default)"
            % ("tcp://%s:PORT" % host, PEER_DEFAULT_PORT))


def _check(ctx: _Context, c: DaemonConfig) -> None:
    """Rules a type check cannot express."""
    if c.log_level not in LEVELS:
        raise ctx.fail((), "log_level", "unknown level %r; choose from %s" % (c.log_level, ", ".join(LEVELS)))
    if not 0 <= c.model.threads <= 256:
        raise ctx.fail(("model",), "threads", "must be in 0..256, got %r" % c.model.threads)
    peer = c.peer
    if peer.address:
        # Several addresses, comma-separated, are a pool's front ends in order of preference.
        addresses = [address.strip() for address in peer.address.split(",")]
        for address in addresses:
            problem = endpoint_problem(address)
            if problem:
                # A port problem already ends with the port it got: the address is not repeated after it.
                got = "" if ", got " in problem else ", got %r" % address
                raise ctx.fail(("peer",), "address", "%s%s%s" % (problem, got, _address_hint(address)))
        if len(set(addresses)) != len(addresses):
            raise ctx.fail(("peer",), "address", "lists an address twice: %r" % peer.address)
        if bool(peer.server_key) != bool(peer.device_key):
            raise ctx.fail(("peer",), "server_key" if not peer.server_key else "device_key",
                           "the secure link needs both server_key (the peer's NAME.key) and device_key (this "
                           "device's NAME.key_secret)")
        remote = [address for address in addresses if not is_loopback_endpoint(address)]
        if not peer.server_key and not peer.insecure and remote:
            raise ctx.fail(("peer",), "address", "%s is not a loopback address: set server_key and device_key "
                           "(see 'edgesplit keys generate') or, on a trusted network only, insecure = true"
                           % remote[0])
    if c.action.cut < -1:
        raise ctx.fail(("action",), "cut", "must be -1 (local) or a cut id, got %r" % c.action.cut)
    _positive(ctx, ("bounds",), "latency_ms", c.bounds.latency_ms, allow_zero=True)
    _positive(ctx, ("bounds",), "energy", c.bounds.energy, allow_zero=True)
    if not c.traces.path:
        raise ctx.fail(("traces",), "path", "must name the trace database file")
    if c.traces.max_mb < 0.0625:
        raise ctx.fail(("traces",), "max_mb", "must be at least 0.0625 (64 KiB), got %r" % c.traces.max_mb)
    if not 1 <= c.traces.batch_size <= 100000:
        raise ctx.fail(("traces",), "batch_size", "must be in 1..100000, got %r" % c.traces.batch_size)
    _positive(ctx, ("traces",), "flush_interval_s", c.traces.flush_interval_s)
    if c.traces.writer not in TRACE_WRITERS:
        raise ctx.fail(("traces",), "writer", "unknown writer %r; choose from %s" % (c.traces.writer,
                                                                                      ", ".join(TRACE_WRITERS)))
    if not c.api.socket:
        raise ctx.fail(("api",), "socket", "must name the API socket file")
    if not 1 <= c.api.queue_size <= 100000:
        raise ctx.fail(("api",), "queue_size", "must be in 1..100000, got %r" % c.api.queue_size)
    _positive(ctx, ("api",), "default_deadline_ms", c.api.default_deadline_ms)
    _positive(ctx, ("api",), "max_input_mb", c.api.max_input_mb)
    if not 0.0 <= c.api.spin_us <= MAX_SPIN_US:  # NaN too
        raise ctx.fail(("api",), "spin_us", "must be a number of microseconds in [0, %d] (0: never spin), got %r"
                       % (MAX_SPIN_US, c.api.spin_us))
    _positive(ctx, ("metrics",), "interval_s", c.metrics.interval_s)
    _check_variants(ctx, c)
    _check_emulation(ctx, c)


def _check_emulation(ctx: _Context, c: DaemonConfig) -> None:
    e = c.emulation
    _positive(ctx, ("emulation",), "workload_scale", e.workload_scale)
    _positive(ctx, ("emulation",), "link_scale", e.link_scale)
    _positive(ctx, ("emulation",), "rtt_ms", e.rtt_ms, allow_zero=True)
    if e.link and not c.peer.address:
        raise ctx.fail(("emulation",), "link", "the software link relays to the peer: set [peer] address too")
    if e.link and not e.board:
        raise ctx.fail(("emulation",), "link", "the link's time is the emulated board's: set [emulation] board too")
    if e.board and c.model.variants:
        raise ctx.fail(("emulation",), "board", "cannot be set together with model.variants (variants run on the "
                       "live board only)")


def _check_variants(ctx: _Context, c: DaemonConfig) -> None:
    model = c.model
    if model.selector not in ("", "linucb"):
        raise ctx.fail(("model",), "selector", "unknown selector %r; the one selector is \"linucb\"" % model.selector)
    if model.selector and len(model.variants) < 2:
        raise ctx.fail(("model",), "variants" if model.variants else "selector",
                       "a selector needs two or more bundles in model.variants, got %d" % len(model.variants))
    if model.variants:
        if not model.selector:
            raise ctx.fail(("model",), "variants", "several variants need a selector: add selector = \"linucb\"")
        if any(not v for v in model.variants):
            raise ctx.fail(("model",), "variants", "an entry is empty: give a bundle directory or \"default\"")
        clashes = [("bundle", model.bundle, "list the bundle in model.variants instead"),
                   ("policy", model.policy, "variants run with their own default thresholds"),
                   ("address", c.peer.address, "variants run on the board only (the peer serves one bundle)")]
        for key, value, why in clashes:
            if value:
                raise ctx.fail(("peer",) if key == "address" else ("model",), key,
                               "cannot be set together with model.variants: %s" % why)
        if c.action.cut != -1:
            raise ctx.fail(("action",), "cut", "must be -1 with model.variants: variants run on the board only")
    s = c.linucb
    for key in ("alpha", "lambda_eta", "lambda_v_scale", "lambda_v_power"):
        _positive(ctx, ("linucb",), key, getattr(s, key), allow_zero=True)
    _positive(ctx, ("linucb",), "delta", s.delta)
    _positive(ctx, ("linucb",), "delay_unit_s", s.delay_unit_s)
    if s.lambda_eta == 0 and s.lambda_v_scale == 0:
        raise ctx.fail(("linucb",), "lambda_eta", "lambda_eta and lambda_v_scale cannot both be 0: a rating needs "
                       "some noise variance to be weighted by")


def changed_keys(old: DaemonConfig, new: DaemonConfig) -> List[str]:
    """Dotted keys whose value differs between two configs."""
    changed = []
    a, b = old.to_dict(), new.to_dict()
    for name in a:
        if isinstance(a[name], dict):
            changed += ["%s.%s" % (name, k) for k in a[name] if a[name][k] != b[name][k]]
        elif a[name] != b[name]:
            changed.append(name)
    return changed
