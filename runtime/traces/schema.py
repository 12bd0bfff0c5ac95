"""The trace database schema, its version and the migration hook.

The database is marked as ours with ``PRAGMA application_id`` and versioned with ``PRAGMA
user_version``; a file that is SQLite but not a trace database, or from a newer edgesplit, is refused
by name. ``MIGRATIONS[v]`` upgrades version v to v + 1 inside the opening transaction.

The SQL avoids features newer than SQLite 3.22 (Ubuntu 18.04 / JetPack 4): no UPSERT, no RETURNING.
Times are seconds (REAL); ``*_s`` columns on the run's clock: a monotonic clock for a real run
(``time.perf_counter``, under ``run`` and ``serve`` alike: seconds since an arbitrary origin,
comparable only within one run; ``runs.started_s`` and ``dropped.last_dropped_s`` are Unix time),
emulated seconds under an emulated board, bandwidth in bits per second, bytes as integers. JSON
columns are TEXT.

Versions: 1 is ``SCHEMA_V1``; 2 adds ``tasks.rating`` (REAL, NULL until given), the application's
late rating of a task's result (a QoE score, say): any finite number the application chooses, stored
as given, with no scale implied; 3 adds ``tasks.energy`` (REAL, NULL in older rows), the energy
proxy of the task in the board's energy unit (the mean reading of the board's proxy sensor over the
task, e.g. MHz of GPU clock; under an emulated board the emulated energy in mJ); 4 adds ``tasks.arm``
(TEXT, NULL when the daemon serves one bundle), the name of the model variant (bandit arm) the
selector chose for the task (see docs/bandit.md). A new file is created as version 1 and migrated, so
every database takes the same path.
"""
import sqlite3
from typing import Callable, Dict, Tuple

from edgesplit.runtime.traces.errors import TraceError

SCHEMA_VERSION = 4
APPLICATION_ID = 0x45535452  # "ESTR": edgesplit traces
DATA_TABLES = ("tasks", "transitions")
JSON_COLUMNS = {"runs": ("versions", "config"), "tasks": ("segment_times", "entropies"),
                "transitions": ("state", "action", "next_state")}

SCHEMA_V1 = """
CREATE TABLE runs (
    run_id       TEXT PRIMARY KEY,
    started_s    REAL NOT NULL,
    board        TEXT,
    bundle_hash  TEXT,
    versions     TEXT NOT NULL DEFAULT '{}',
    config       TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE tasks (
    seq            INTEGER PRIMARY KEY,
    run_id         TEXT NOT NULL,
    task_id        INTEGER NOT NULL,
    arrival_s      REAL NOT NULL,
    deadline_s     REAL,
    exit           INTEGER,
    cut            INTEGER,
    segment_times  TEXT NOT NULL DEFAULT '{}',
    bytes_sent     INTEGER NOT NULL DEFAULT 0,
    transfer_s     REAL,
    entropies      TEXT NOT NULL DEFAULT '{}',
    bandwidth_bps  REAL,
    fallback       INTEGER NOT NULL DEFAULT 0,
    result         INTEGER,
    label          INTEGER,
    latency_s      REAL,
    policy_id      TEXT,
    UNIQUE (run_id, task_id)
);
CREATE TABLE transitions (
    seq         INTEGER PRIMARY KEY,
    run_id      TEXT NOT NULL,
    step        INTEGER NOT NULL,
    time_s      REAL NOT NULL,
    state       TEXT NOT NULL,
    action      TEXT NOT NULL,
    reward      REAL NOT NULL,
    next_state  TEXT NOT NULL,
    policy_id   TEXT,
    UNIQUE (run_id, step)
);
CREATE TABLE dropped (
    table_name      TEXT PRIMARY KEY,
    rows            INTEGER NOT NULL,
    last_dropped_s  REAL
);
INSERT INTO dropped (table_name, rows, last_dropped_s) VALUES ('tasks', 0, NULL), ('transitions', 0, NULL);
"""



def _add_task_rating(conn: sqlite3.Connection) -> None:
    conn.execute("ALTER TABLE tasks ADD COLUMN rating REAL")  # ADD COLUMN: any SQLite >= 3.2, so JetPack 4's 3.22


def _add_task_energy(conn: sqlite3.Connection) -> None:
    conn.execute("ALTER TABLE tasks ADD COLUMN energy REAL")


def _add_task_arm(conn: sqlite3.Connection) -> None:
    conn.execute("ALTER TABLE tasks ADD COLUMN arm TEXT")


# version -> function(connection) that upgrades that version to version + 1.
MIGRATIONS = {1: _add_task_rating, 2: _add_task_energy, 3: _add_task_arm}  # type: Dict[int, Callable[[sqlite3.Connection], None]]
# Columns added by migrations: readers of an older file show them as NULL, so exports keep one layout.
ADDED_COLUMNS = {"tasks": ("rating", "energy", "arm")}  # type: Dict[str, Tuple[str, ...]]


def _pragma(conn: sqlite3.Connection, name: str) -> int:
    return int(conn.execute("PRAGMA %s" % name).fetchone()[0])


def _has_tables(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0


def check_identity(conn: sqlite3.Connection, where: str) -> int:
    """Raise unless this is an edgesplit trace database; return its schema version (0 = empty file)."""
    try:
        app_id = _pragma(conn, "application_id")
        version = _pragma(conn, "user_version")
        empty = not _has_tables(conn)
    except sqlite3.DatabaseError as exc:
        raise TraceError("%s: not an SQLite database (%s): give the path of a trace database written by "
                         "edgesplit (e.g. 'edgesplit run ... --traces DB')" % (where, exc)) from None
    if app_id == 0 and version == 0 and empty:
        return 0
    if app_id != APPLICATION_ID:
        raise TraceError("%s: an SQLite database, but not an edgesplit trace database (application_id %#x): "
                         "check the path" % (where, app_id))
    if version > SCHEMA_VERSION:
        raise TraceError("%s: trace schema version %d is newer than this edgesplit reads (%d): upgrade "
                         "edgesplit" % (where, version, SCHEMA_VERSION))
    return version


def create_or_migrate(conn: sqlite3.Connection, where: str) -> None:
    """Bring an empty file or an older trace database to SCHEMA_VERSION, in one transaction."""
    version = check_identity(conn, where)
    if version == SCHEMA_VERSION:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        if version == 0:
            for statement in SCHEMA_V1.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("PRAGMA application_id = %d" % APPLICATION_ID)
            version = 1
        while version < SCHEMA_VERSION:
            if version not in MIGRATIONS:
                raise TraceError("%s: no migration from trace schema %d to %d" % (where, version, version + 1))
            MIGRATIONS[version](conn)
            version += 1
        conn.execute("PRAGMA user_version = %d" % SCHEMA_VERSION)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
