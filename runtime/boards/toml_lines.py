"""Line numbers for TOML keys, which tomllib does not report.

Good enough for the flat files board configs are: a ``[table]`` header sets the current table; a line
``key = ...`` (bare or quoted key) inside it is that key's line. Multi-line strings and arrays are
skipped so their contents are not mistaken for keys.
"""
import re
from typing import Optional, Sequence

HEADER = re.compile(r"^\s*\[\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\s*(#.*)?$")
KEY = re.compile(r"^\s*(\"[^\"]*\"|'[^']*'|[A-Za-z0-9_\-]+)\s*=")


def _unquote(key: str) -> str:
    return key[1:-1] if key[:1] in "\"'" else key


def find_line(text: str, table: Sequence[str], key: Optional[str] = None) -> Optional[int]:
    """1-based line of ``key`` in ``table`` (or of the table header when key is None), else None."""
    wanted = tuple(table)
    current = ()  # type: tuple
    depth = 0  # open brackets of a multi-line array
    in_string = None  # type: Optional[str]
    for number, line in enumerate(text.splitlines(), start=1):
        if in_string:
            if in_string in line:
                in_string = None
            continue
        if depth > 0:
            depth += line.count("[") - line.count("]")
            continue
        header = HEADER.match(line)
        if header:
            current = tuple(_unquote(p.strip()) for p in header.group(1).split("."))
            if key is None and current == wanted:
                return number
            continue
        match = KEY.match(line)
        if not match:
            continue
        if current == wanted and key is not None and _unquote(match.group(1)) == key:
            return number
        rest = line[match.end():]
        for quote in ('"""', "'''"):
            if rest.count(quote) == 1:
                in_string = quote
        if not in_string:
            depth = max(0, rest.split("#")[0].count("[") - rest.split("#")[0].count("]"))
    return None
