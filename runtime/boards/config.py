"""The board config model and its strict loader.

One TOML file per board in ``board_configs/``. Every table is a dataclass below; an unknown key, a
missing key, a wrong type or a value out of range is a ``BoardConfigError`` naming the file, the key
and its line, so a typo never silently falls back to a default.
"""
import dataclasses
import math
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Type, TypeVar

from edgesplit.runtime.boards.toml_lines import find_line
from edgesplit.runtime.errors import EdgesplitError
from edgesplit.runtime.sensors.catalog import GPU_SOURCES, POWER_SOURCES, PROXY_UNITS, SENSOR_KINDS

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.8-3.10 on the boards
    import tomli as tomllib

KNOWN_PROVIDERS = (
    "TensorrtExecutionProvider", "CUDAExecutionProvider", "ROCMExecutionProvider", "MIGraphXExecutionProvider",
    "OpenVINOExecutionProvider", "DnnlExecutionProvider", "XnnpackExecutionProvider", "ACLExecutionProvider",
    "ArmNNExecutionProvider", "QNNExecutionProvider", "CoreMLExecutionProvider", "CPUExecutionProvider",
)


class BoardConfigError(EdgesplitError):
    """A board config file is malformed; the message names file, key and line."""


@dataclass(frozen=True)
class MatchSection:
    """How ``board detect`` recognises the board."""

    models: Tuple[str, ...]  # device-tree model strings; a model that starts with one of these matches
    generic: bool = False  # a fallback config for hosts no model string identifies (x86)
    detect: bool = True  # false: a variant chosen only by name (--board), never by 'board detect'


@dataclass(frozen=True)
class SensorSection:
    """Which sensors to read and where from."""

    enabled: Tuple[str, ...]  # sensor kinds: gpu, power, cpu_freq, thermal, memory, throttle
    gpu_sources: Tuple[str, ...] = ()  # tried in order: nvml, jtop, devfreq
    power_sources: Tuple[str, ...] = ()  # tried in order: ina3221, jtop, nvml, rpi_pmic
    total_power_rails: Tuple[str, ...] = ("VDD_IN", "POM_5V_IN")  # INA3221 rail that is the board input
    thermal_zones: Tuple[str, ...] = ()  # thermal zone types to watch; empty: all
    rate_hz: float = 10.0  # sampling rate of the sensor thread
    window_s: float = 1.0  # default averaging window the controller sees


@dataclass(frozen=True)
class ExecutionSection:
    """How segments run on this board."""

    providers: Tuple[str, ...]  # onnxruntime execution providers, most preferred first
    intra_op_threads: int  # threads inside one operator (0: onnxruntime decides)
    inter_op_threads: int  # threads across operators (sequential execution uses 1)


@dataclass(frozen=True)
class PolicySection:
    """What the policy sees of this board."""

    energy_proxy: str  # reading used as energy: gpu_freq (EdgeML), power_total, cpu_freq, ...


@dataclass(frozen=True)
class BoundsSection:
    """Default user bounds, overridable per deployment."""

    latency_ms: float  # end-to-end latency bound per task
    energy: float  # bound on the energy proxy, in energy_unit
    energy_unit: str  # unit of the energy proxy reading (MHz, W); must match it


# The first word of every emulation figure's provenance, so a reader knows how much to trust it.
PROVENANCE_KINDS = ("measured", "derived", "spec", "assumption")
EMULATED_ENERGY_UNIT = "mJ"


@dataclass(frozen=True)
class EmulationSection:
    """How ``run``/``build-policy --board NAME`` emulate this board. EMULATED figures, not measurements of
    edgesplit on the board; each ``*_source`` starts with measured:, derived:, spec: or assumption:."""

    description: str  # what is emulated, e.g. "Jetson Nano GPU (128-core Maxwell), emulated"
    macs_per_s: float  # compute speed: a segment takes MACs x workload_scale / macs_per_s
    macs_per_s_source: str  # where macs_per_s comes from
    busy_power_w: float  # power while the board computes a segment
    busy_power_w_source: str
    idle_power_w: float  # power for the rest of a task's service time (sending, waiting for the peer)
    idle_power_w_source: str
    energy_unit: str  # always mJ: emulated energy is power x time, whatever the live energy proxy reads

    @property
    def basis(self) -> str:
        """How the compute figure was obtained: measured, derived or assumption (a spec alone is derived)."""
        kind = self.macs_per_s_source.split(":", 1)[0]
        return "derived" if kind == "spec" else kind


@dataclass(frozen=True)
class BoardConfig:
    name: str  # the file's stem, e.g. jetson_tx2
    description: str  # one line for people
    match: MatchSection
    sensors: SensorSection
    execution: ExecutionSection
    policy: PolicySection
    bounds: BoundsSection
    emulation: Optional[EmulationSection] = None  # absent: the board runs live only, never emulated
    path: str = field(default="", metadata={"toml": False})  # where it was loaded from

    def to_dict(self) -> Dict[str, Any]:
        data = dataclasses.asdict(self)
        if self.emulation is not None:
            data["emulation"]["basis"] = self.emulation.basis
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}


T = TypeVar("T")


class _Context(object):
    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.text = text

    def fail(self, table: Sequence[str], key: Optional[str], message: str) -> BoardConfigError:
        line = find_line(self.text, table, key) if key is not None else None
        if line is None and key is not None:  # the key may be a whole [table] of its own
            line = find_line(self.text, list(table) + [key])
        if line is None:
            line = find_line(self.text, table) if table else None
        where = ".".join(list(table) + ([key] if key else [])) or "(top level)"
        at = "%s:%d" % (self.path, line) if line else self.path
        return BoardConfigError("%s: key %s: %s" % (at, where, message))


def _field_types(cls: type) -> Dict[str, Any]:
    import typing

    return typing.get_type_hints(cls)


def _convert(ctx: _Context, table: Sequence[str], key: str, value: Any, hint: Any) -> Any:
    import typing

    get_origin = getattr(typing, "get_origin", lambda h: getattr(h, "__origin__", None))
    get_args = getattr(typing, "get_args", lambda h: getattr(h, "__args__", ()))
    if get_origin(hint) is typing.Union:  # Optional[X]: the key is present, so it is an X
        hint = [a for a in get_args(hint) if a is not type(None)][0]
    origin = get_origin(hint)
    if origin in (tuple, Tuple):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ctx.fail(table, key, "expected a list of strings, got %s" % _describe(value))
        return tuple(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ctx.fail(table, key, "expected true or false, got %s" % _describe(value))
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ctx.fail(table, key, "expected an integer, got %s" % _describe(value))
        if not -2 ** 63 <= value < 2 ** 63:  # TOML integers are 64-bit
            raise ctx.fail(table, key, "integer out of the 64-bit range TOML allows")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ctx.fail(table, key, "expected a number, got %s" % _describe(value))
        # nan compares false with every bound, so it would pass each range check below and poison the
        # reward; inf would pass "positive". Neither is a setting: refuse both here, once for every key.
        if isinstance(value, int) and not -2 ** 63 <= value < 2 ** 63:
            raise ctx.fail(table, key, "integer out of the 64-bit range TOML allows")
        if not math.isfinite(value):
            raise ctx.fail(table, key, "expected a finite number, got %r (nan and inf are not settings)" % value)
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ctx.fail(table, key, "expected a string, got %s" % _describe(value))
        return value
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ctx.fail(table, key, "expected a table [%s], got %s" % (".".join(list(table) + [key]),
                                                                          _describe(value)))
        return _build(ctx, list(table) + [key], value, hint)
    raise TypeError("board config field type %r is not supported" % (hint,))


def _describe(value: Any) -> str:
    kinds = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
             dict: "a table"}
    return "%s (%r)" % (kinds.get(type(value), type(value).__name__), value)


def _build(ctx: _Context, table: Sequence[str], data: Dict[str, Any], cls: Type[T]) -> T:
    hints = _field_types(cls)
    fields = [f for f in dataclasses.fields(cls) if f.metadata.get("toml", True)]
    known = {f.name for f in fields}
    for key in data:
        if key not in known:
            raise ctx.fail(table, key, "unknown key (known keys here: %s)" % ", ".join(sorted(known)))
    values = {}
    for f in fields:
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:  # type: ignore
                raise ctx.fail(table, None, "missing required key %r" % f.name)
            continue
        values[f.name] = _convert(ctx, table, f.name, data[f.name], hints[f.name])
    return cls(**values)  # type: ignore[call-arg]


def parse_board_config(text: str, path: str) -> BoardConfig:
    ctx = _Context(path, text)
    try:
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError, ValueError) as exc:  # deep nesting raises RecursionError
        raise BoardConfigError("%s: not valid TOML: %s" % (path, exc or type(exc).__name__)) from None
    config = _build(ctx, (), data, BoardConfig)
    config = dataclasses.replace(config, path=path)
    _check(ctx, config)
    return config


def load_board_config(path: str) -> BoardConfig:
    try:
        with open(path, "rb") as handle:
            text = handle.read().decode("utf-8")
    except OSError as exc:
        raise BoardConfigError("cannot read board config %s: %s" % (path, exc.strerror or exc))
    except UnicodeDecodeError as exc:
        raise BoardConfigError("%s: not UTF-8 text: %s" % (path, exc))
    return parse_board_config(text, path)


def _check(ctx: _Context, c: BoardConfig) -> None:
    """Rules a type check cannot express."""
    stem = os.path.splitext(os.path.basename(ctx.path))[0]
    if c.name != stem:
        raise ctx.fail((), "name", "is %r but the file is %s.toml; they must agree" % (c.name, stem))
    if c.match.generic and not c.match.detect:
        raise ctx.fail(("match",), "detect", "a generic fallback is what 'board detect' picks; it cannot be "
                                             "detect = false (remove one of generic, detect)")
    if not c.match.generic and not c.match.models:
        raise ctx.fail(("match",), "models", "a board that is not generic needs at least one model string")
    _subset(ctx, ("sensors",), "enabled", c.sensors.enabled, SENSOR_KINDS)
    _subset(ctx, ("sensors",), "gpu_sources", c.sensors.gpu_sources, GPU_SOURCES)
    _subset(ctx, ("sensors",), "power_sources", c.sensors.power_sources, POWER_SOURCES)
    for kind, sources in (("gpu", c.sensors.gpu_sources), ("power", c.sensors.power_sources)):
        if kind in c.sensors.enabled and not sources:
            raise ctx.fail(("sensors",), "%s_sources" % kind, "sensor %r is enabled but has no sources" % kind)
    if not 0 < c.sensors.rate_hz <= 1000:
        raise ctx.fail(("sensors",), "rate_hz", "must be in (0, 1000] Hz, got %r" % c.sensors.rate_hz)
    if c.sensors.window_s <= 0:
        raise ctx.fail(("sensors",), "window_s", "must be positive, got %r" % c.sensors.window_s)
    _subset(ctx, ("execution",), "providers", c.execution.providers, KNOWN_PROVIDERS)
    if "CPUExecutionProvider" not in c.execution.providers:
        raise ctx.fail(("execution",), "providers", "must include CPUExecutionProvider as the last resort")
    for key in ("intra_op_threads", "inter_op_threads"):
        if not 0 <= getattr(c.execution, key) <= 256:
            raise ctx.fail(("execution",), key, "must be in 0..256, got %r" % getattr(c.execution, key))
    proxy = c.policy.energy_proxy
    if proxy not in PROXY_UNITS:
        raise ctx.fail(("policy",), "energy_proxy", "unknown reading %r; choose from %s"
                       % (proxy, ", ".join(sorted(PROXY_UNITS))))
    if c.bounds.energy_unit != PROXY_UNITS[proxy]:
        raise ctx.fail(("bounds",), "energy_unit", "is %r but %s is measured in %s"
                       % (c.bounds.energy_unit, proxy, PROXY_UNITS[proxy]))
    for key in ("latency_ms", "energy"):
        if getattr(c.bounds, key) <= 0:
            raise ctx.fail(("bounds",), key, "must be positive, got %r" % getattr(c.bounds, key))
    if c.emulation is not None:
        _check_emulation(ctx, c.emulation, proxy)


def _check_emulation(ctx: _Context, e: EmulationSection, proxy: str) -> None:
    table = ("emulation",)
    for key in ("macs_per_s", "busy_power_w", "idle_power_w"):
        value = getattr(e, key)
        if not math.isfinite(value):
            raise ctx.fail(table, key, "must be a finite number, got %r" % value)
        if value < 0 or (value == 0 and key != "idle_power_w"):
            raise ctx.fail(table, key, "must be positive, got %r" % value)
    if e.idle_power_w > e.busy_power_w:
        raise ctx.fail(table, "idle_power_w", "is %r W, more than busy_power_w (%r W): swap them?"
                       % (e.idle_power_w, e.busy_power_w))
    for key in ("macs_per_s_source", "busy_power_w_source", "idle_power_w_source"):
        kind = getattr(e, key).split(":", 1)[0].strip()
        if kind not in PROVENANCE_KINDS or not getattr(e, key).split(":", 1)[1:] or \
                not getattr(e, key).split(":", 1)[1].strip():
            raise ctx.fail(table, key, "must start with one of %s and then say where the figure comes from "
                                       "(which data and rows, which spec and how, or that it is assumed)"
                           % ", ".join(k + ":" for k in PROVENANCE_KINDS))
    if e.energy_unit != EMULATED_ENERGY_UNIT:
        raise ctx.fail(table, "energy_unit", "must be %r: emulated energy is busy/idle power x time, whatever "
                                             "the live energy proxy (%s, in %s) reads"
                       % (EMULATED_ENERGY_UNIT, proxy, PROXY_UNITS[proxy]))


def _subset(ctx: _Context, table: Sequence[str], key: str, values: Sequence[str], known: Sequence[str]) -> None:
    for value in values:
        if value not in known:
            raise ctx.fail(table, key, "unknown value %r; choose from %s" % (value, ", ".join(known)))
    if len(set(values)) != len(values):
        raise ctx.fail(table, key, "lists a value twice: %s" % list(values))


def board_configs_dir() -> str:
    """The shipped board_configs folder: the installed package, else the source checkout's top level."""
    override = os.environ.get("EDGESPLIT_BOARD_CONFIGS")
    if override:
        return override
    try:
        from edgesplit import board_configs

        return os.path.dirname(os.path.abspath(board_configs.__file__))
    except ImportError:
        here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        return os.path.join(here, "board_configs")


def list_board_configs(directory: Optional[str] = None) -> List[str]:
    directory = directory or board_configs_dir()
    try:
        return sorted(os.path.splitext(f)[0] for f in os.listdir(directory) if f.endswith(".toml"))
    except OSError as exc:
        raise BoardConfigError("cannot list board configs in %s: %s" % (directory, exc.strerror or exc))


def load_named_board(name: str, directory: Optional[str] = None) -> BoardConfig:
    directory = directory or board_configs_dir()
    names = list_board_configs(directory)
    if name not in names:
        raise BoardConfigError("no board config %r in %s; known boards: %s" % (name, directory, ", ".join(names)))
    return load_board_config(os.path.join(directory, name + ".toml"))


def load_all_boards(directory: Optional[str] = None) -> List[BoardConfig]:
    directory = directory or board_configs_dir()
    return [load_board_config(os.path.join(directory, n + ".toml")) for n in list_board_configs(directory)]
