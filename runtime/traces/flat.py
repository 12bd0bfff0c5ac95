"""One flat, typed table per trace table: what the Parquet and CSV exports write.

The JSON columns become one column per key, named ``PREFIX.KEY`` (lists: ``PREFIX.INDEX``, nested
objects: ``PREFIX.KEY.SUBKEY``), so a spreadsheet, pandas or DuckDB reads numbers, not JSON text:

=============  ===================  =============================================================
table          JSON column          flat columns
=============  ===================  =============================================================
tasks          segment_times        ``segment_s.<segment id>``: seconds the task spent in it
tasks          entropies            ``entropy.<exit id>``: normalised entropy at that early exit
transitions    state, next_state    ``state.<i>``, ``next_state.<i>`` in the run's feature order
transitions    action               ``action.cut``, ``action.interval``, ``action.thresholds.<i>``
=============  ===================  =============================================================

A key absent from a row (a segment the task never ran, an exit it never reached) is null.
Scalar columns keep their SQLite type: INTEGER -> int64 (null where NULL), REAL -> float64,
TEXT -> string; ``fallback`` is a boolean.
"""
import functools
import json
import math
import sqlite3
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from edgesplit.runtime.traces.errors import TraceError
from edgesplit.runtime.traces.schema import JSON_COLUMNS, create_or_migrate

# Prefix of the flat columns that replace each JSON column.
FLAT_PREFIX = {"segment_times": "segment_s", "entropies": "entropy", "state": "state", "action": "action",
               "next_state": "next_state"}
BOOL_COLUMNS = ("fallback",)
INT, FLOAT, TEXT, BOOL = "int64", "float64", "string", "bool"


@dataclass
class FlatTable:
    """Rows as dicts of flat column -> value (None = null); ``types`` maps every column to its type."""

    table: str
    columns: List[str] = field(default_factory=list)
    types: Dict[str, str] = field(default_factory=dict)
    rows: List[Dict[str, Any]] = field(default_factory=list)

    def column(self, name: str) -> List[Any]:
        return [row.get(name) for row in self.rows]


@functools.lru_cache(maxsize=None)
def current_declared_types(table: str) -> Dict[str, str]:
    """Column -> declared SQLite type in this version's schema (an older file lacks the columns added since)."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        create_or_migrate(conn, "the current trace schema")
        return {row[1]: row[2] for row in conn.execute("PRAGMA table_info(%s)" % table)}
    finally:
        conn.close()


def _sql_type(declared: str, name: str) -> str:
    if name in BOOL_COLUMNS:
        return BOOL
    declared = declared.upper()
    if "INT" in declared:
        return INT
    if "TEXT" in declared or "CHAR" in declared:
        return TEXT
    return FLOAT


def _flat_numbers(value: Any, prefix: str, out: Dict[str, Optional[float]], where: str) -> None:
    if value is None:
        out[prefix] = None
    elif isinstance(value, (bool, int, float)):
        number = float(value)
        out[prefix] = number if math.isfinite(number) else None
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _flat_numbers(item, "%s.%d" % (prefix, i), out, where)
    elif isinstance(value, dict):
        for key, item in value.items():
            _flat_numbers(item, "%s.%s" % (prefix, key), out, where)
    else:
        raise TraceError("%s: %r is not a number: flat exports need numbers (or lists/objects of them); "
                         "use --format jsonl for this table" % (where, value))


def flat_table(conn, table: str, columns: List[str], cursor) -> FlatTable:
    """Read every row of ``cursor`` (``SELECT *`` of ``table``) into a flat, typed table."""
    declared = dict(current_declared_types(table))
    declared.update((row[1], row[2]) for row in conn.execute("PRAGMA table_info(%s)" % table))
    json_columns = set(JSON_COLUMNS.get(table, ()))
    flat = FlatTable(table)
    dynamic = {name: [] for name in json_columns}  # type: Dict[str, List[str]]
    for values in cursor:
        record = dict(zip(columns, values))
        row = {}  # type: Dict[str, Any]
        for name in columns:
            value = record[name]
            if name in json_columns:
                where = "%s row seq %s, column %s" % (table, record.get("seq"), name)
                try:
                    decoded = json.loads(value)
                except (TypeError, ValueError) as exc:
                    raise TraceError("%s: not JSON (%s)" % (where, exc)) from None
                numbers = {}  # type: Dict[str, Optional[float]]
                _flat_numbers(decoded, FLAT_PREFIX.get(name, name), numbers, where)
                for key in numbers:
                    if key not in dynamic[name]:
                        dynamic[name].append(key)
                row.update(numbers)
            elif name in BOOL_COLUMNS:
                row[name] = None if value is None else bool(value)
            else:
                row[name] = value
        flat.rows.append(row)
    for name in columns:
        if name in json_columns:
            for key in dynamic[name]:
                flat.columns.append(key)
                flat.types[key] = FLOAT
        else:
            flat.columns.append(name)
            flat.types[name] = _sql_type(declared.get(name, ""), name)
    return flat
