"""The accepted range of every number flag that several commands share, checked in one place.

``edgesplit.runtime.cli.main`` calls ``check_number_flags`` after parsing and before any command runs,
so ``run``, ``demo``, ``submit``, ``link`` and the workstation commands (``train``, ``evaluate``,
``build-policy``, ...) refuse ``--rtt-ms nan`` or ``--limit -1`` with the same one line: the flag, what
it accepts, the value given (an ``InputError``: exit status 1). argparse's ``float`` takes ``nan`` and
``inf``, and NaN passes every ``<`` test, so each range says what is accepted rather than what is not.

A flag is found by its name alone: a command that gives one of these names another meaning must use
another name (``tests/runtime/test_cli_parser.py`` checks that every such flag is a number flag). A
command whose own use needs a narrower range names it with ``parser.set_defaults(number_flag_ranges=
{FLAG: NumberRange(...)})``.

``--energy-bound`` is finite everywhere: "no energy bound" is leaving the flag out where that is the
default (``run``, ``train``), or ``--no-energy-bound`` where the default is a bound (``evaluate``,
``build-policy``), never ``inf``.
"""
import math
from typing import Any, Mapping, NamedTuple, Optional, Union

from edgesplit.runtime.errors import InputError


class NumberRange(NamedTuple):
    """Finite numbers from ``low`` (inclusive unless ``low_open``) to ``high`` (inclusive); optionally integers."""
    low: float
    high: float = math.inf
    low_open: bool = False
    integer: bool = False
    unit: str = ""

    def accepts(self, value: Union[int, float]) -> bool:
        if not math.isfinite(value) or value > self.high:
            return False
        return value > self.low if self.low_open else value >= self.low

    def describe(self) -> str:
        if self.integer:
            return "a whole number >= %g" % self.low
        if self.high != math.inf:
            return "a number from %g to %.0f%s" % (self.low, self.high, " " + self.unit if self.unit else "")
        if self.low_open and self.low == 0:
            return "a positive number (finite, > 0)"
        if self.low == 0:
            return "zero or a positive number (finite, >= 0)"
        return "a finite number %s %g" % (">" if self.low_open else ">=", self.low)


POSITIVE = NumberRange(0.0, low_open=True)
NON_NEGATIVE = NumberRange(0.0)
COUNT = NumberRange(1, integer=True)

SHARED_RANGES = {
    "--rtt-ms": NON_NEGATIVE,
    "--period-ms": NON_NEGATIVE,  # 0: tasks back to back (run); train narrows it to > 0
    "--link-scale": POSITIVE,
    "--workload-scale": POSITIVE,
    "--speedup": POSITIVE,
    "--time-scale": POSITIVE,
    "--recording-speed": POSITIVE,
    "--link-mean-mbps": POSITIVE,
    "--latency-bound-ms": POSITIVE,
    "--energy-bound": POSITIVE,
    "--limit": COUNT,
    "--rows": COUNT,
    "--timeout": POSITIVE,  # seconds to wait for the daemon (submit, status)
}  # type: Mapping[str, NumberRange]

# --deadline-ms takes the local API's own range (runtime/api/protocol.py), looked up only when the flag is
# given: the API's modules load numpy and pyzmq, which a command such as 'keys' need not import.
DEADLINE_FLAG = "--deadline-ms"

_HINTS = {
    "--limit": "leave --limit out for every input",
    "--rows": "leave --rows out for every row",
}


def _deadline_range() -> NumberRange:
    from edgesplit.runtime.api.protocol import DEADLINE_MS_RANGE

    return NumberRange(DEADLINE_MS_RANGE[0], DEADLINE_MS_RANGE[1], unit="ms (the local API's range)")


def _dest(flag: str) -> str:
    return flag[2:].replace("-", "_")


def _hint(flag: str, args: Any) -> Optional[str]:
    if flag == "--energy-bound":
        return ("for no energy bound give --no-energy-bound" if hasattr(args, "no_energy_bound")
                else "for no energy bound leave --energy-bound out")
    return _HINTS.get(flag)


def range_of(flag: str, args: Any) -> NumberRange:
    """The range ``flag`` accepts in the command ``args`` were parsed for."""
    narrower = getattr(args, "number_flag_ranges", None) or {}
    if flag in narrower:
        return narrower[flag]
    return _deadline_range() if flag == DEADLINE_FLAG else SHARED_RANGES[flag]


def check_number_flags(args: Any) -> None:
    """Raise InputError naming the first shared number flag in ``args`` whose value is out of its range."""
    for flag in list(SHARED_RANGES) + [DEADLINE_FLAG]:
        value = getattr(args, _dest(flag), None)
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        accepted = range_of(flag, args)
        if not accepted.accepts(value):
            hint = _hint(flag, args)
            raise InputError("%s must be %s, got %r%s" % (flag, accepted.describe(), value,
                                                          "; " + hint if hint else ""))
