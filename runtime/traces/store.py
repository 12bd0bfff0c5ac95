"""TraceStore: the durable, size-capped SQLite log of tasks and controller transitions.

Durability. The database runs in WAL mode with ``synchronous=FULL``: every commit appends to the
write-ahead log and fsyncs it, so a committed batch survives a SIGKILL and a power cut, while an
interrupted commit is simply absent (WAL frames without their commit record are ignored on
recovery). The file always passes ``PRAGMA integrity_check``. Rows are written into an open
transaction and committed every ``batch_size`` rows, every ``flush_interval_s`` seconds (checked on
each write and by a background thread) and on ``close``: so at most the last uncommitted batch is
lost, and an SD card sees one fsync per batch rather than one per row. ``durable=False`` selects
``synchronous=NORMAL``: still never corrupt and safe against a process kill, but a power cut may
lose the batches committed since the last checkpoint.

Committing off the caller's thread. With ``background_commit=True`` (what the device pipeline and
the daemon use) a write only checks and encodes its row and queues it; a writer thread inserts the
queued rows and commits them, so a task never waits for an fsync. The bound stays the same: the
writer takes the queue whenever half a batch (``batch_size // 2``, at least 1) or ``flush_interval_s``
is reached, and a write waits while ``batch_size`` rows are uncommitted (queued or being committed),
so a power cut still loses at most one batch of rows (an SD card sees one fsync per half batch at
most). A task logged twice is then refused by the writer (logged, and the row skipped) rather than
by the caller; ``flush()``, ``set_feedback()`` and ``close()`` first wait for the queue to be written.
The writer inserts each queue it takes with one multi-row INSERT per table, so SQLite works without
the GIL for a batch at a time, and callers queue without the writer's lock: a task thread competes
with the writer as little as two Python threads can. ``writer_wait_s`` adds up the seconds callers
waited for room: above zero, the disk's commits (an fsync each) are slower than the tasks fill half
a batch, and the bound, not the code, sets the task rate.

Size cap. With ``max_rows`` each data table keeps at most that many rows; with ``max_bytes`` the
database's used pages stay under that size (the WAL adds up to ~4 MiB, truncated after
checkpoints). The oldest rows go first, deleted in the same transaction as the batch that crossed
the cap, and counted in the ``dropped`` table so exports can say what is missing.

A full or failing disk degrades, never breaks. When a write or commit fails for lack of space (or
any other SQLite I/O error), the open transaction is rolled back and its rows, with every row
logged after it, wait in a bounded in-memory backlog (``MAX_BACKLOG_ROWS``); rows beyond it are
counted in ``unwritten_rows`` and lost. Callers never see the error: the task that produced the
row is still answered. Every ``RETRY_S`` a write (or the flusher) tries the backlog again; when it
fits, writing resumes. One WARNING is logged when writing stops and one when it resumes, never one
per row. ``writable``, ``backlog_rows`` and ``unwritten_rows`` say where the store stands.
"""
import collections
import itertools
import logging
import operator
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from collections.abc import Mapping as _AnyMapping
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

from edgesplit.runtime.traces.errors import TraceError
from edgesplit.runtime.traces.records import (TaskRecord, TransitionRecord, dumps, finite_float, optional_float,
                                    optional_int)
from edgesplit.runtime.traces.schema import DATA_TABLES, create_or_migrate

log = logging.getLogger(__name__)

WAL_LIMIT_BYTES = 4 * 1024 * 1024
MAX_BACKLOG_ROWS = 4096  # rows kept in memory while the disk refuses writes (~1 KiB each)
RETRY_S = 1.0  # how often a refused disk is tried again
# What a full, read-only or failing disk raises; IntegrityError (a subclass) is caught before these.
_DISK_ERRORS = (sqlite3.OperationalError, sqlite3.DatabaseError)
_DROP_FRACTION = 10  # when over max_bytes, drop 1/10 of the bigger table's rows per pass

_INSERT_TASK = ("INSERT INTO tasks (run_id, task_id, arrival_s, deadline_s, exit, cut, segment_times, bytes_sent, "
                "transfer_s, entropies, bandwidth_bps, fallback, result, label, rating, latency_s, policy_id, energy, arm) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
_INSERT_TRANSITION = ("INSERT INTO transitions (run_id, step, time_s, state, action, reward, next_state, policy_id) "
                      "VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
# The raw values ``log_task_values`` / ``log_transition_values`` take, in this order (the columns' order).
TASK_FIELDS = ("run_id", "task_id", "arrival_s", "deadline_s", "exit", "cut", "segment_times", "bytes_sent",
               "transfer_s", "entropies", "bandwidth_bps", "fallback", "result", "label", "rating", "latency_s",
               "policy_id", "energy", "arm")
TRANSITION_FIELDS = ("run_id", "step", "time_s", "state", "action", "reward", "next_state", "policy_id")
_KIND = {_INSERT_TASK: "task", _INSERT_TRANSITION: "transition"}
_SQL = {"task": _INSERT_TASK, "transition": _INSERT_TRANSITION}


# SQLite before 3.32 (3.22 on JetPack 4) binds at most this many values in one statement.
_MAX_VARIABLES = 999
_MANY_SQL = {}  # type: Dict[Tuple[str, int], str]


def task_row(v: tuple) -> tuple:
    """Task values in ``TASK_FIELDS`` order -> the row the tasks table stores; TraceError names the field that
    cannot be stored."""
    rating = v[14]
    return (v[0], int(v[1]), float(v[2]), optional_float(v[3], "deadline_s"), optional_int(v[4]),
            optional_int(v[5]), dumps(v[6], "segment_times"), int(v[7]), optional_float(v[8], "transfer_s"),
            dumps(v[9], "entropies"), optional_float(v[10], "bandwidth_bps"), 1 if v[11] else 0,
            optional_int(v[12]), optional_int(v[13]),
            None if rating is None else finite_float(rating, "task %r: rating" % (v[1],)),
            optional_float(v[15], "latency_s"), v[16], optional_float(v[17], "energy"), v[18])


def raw_task_row(v: tuple) -> tuple:
    """As ``task_row``, with ``entropies`` also as the executor's (exit id, entropy) pairs."""
    entropies = v[9]
    if not isinstance(entropies, _AnyMapping):
        v = v[:9] + ({str(e): h for e, h in entropies},) + v[10:]
    return task_row(v)


class TransitionRows:
    """Transition values in ``TRANSITION_FIELDS`` order -> rows. A state that is the tuple the previous row gave
    as its next state (the controller's) is encoded once."""

    def __init__(self):
        self._last_next_state = (None, "")  # type: Tuple[Any, str]

    def __call__(self, v: tuple) -> tuple:
        reward = optional_float(v[5], "reward")
        if reward is None:
            raise TraceError("reward is NaN or missing")
        state, next_state = v[3], v[6]
        cached, text = self._last_next_state
        state_text = text if state is cached and type(state) is tuple else dumps(state, "state")
        next_text = dumps(next_state, "next_state")
        self._last_next_state = (next_state, next_text)
        return (v[0], int(v[1]), float(v[2]), state_text, dumps(v[4], "action"), reward, next_text, v[7])


def _describe(what: tuple) -> str:
    """("task", 7, "run-id") -> "task 7 of run run-id"."""
    return "%s %r of run %s" % what


def _rows_per_statement(row: tuple) -> int:
    return max(1, _MAX_VARIABLES // len(row))


def _insert_many(conn: sqlite3.Connection, sql: str, rows: List[tuple]) -> None:
    """``sql`` (one INSERT ... VALUES (?, ...)) for every row at once, as one multi-row INSERT."""
    key = (sql, len(rows))
    many = _MANY_SQL.get(key)
    if many is None:
        head, group = sql.split(" VALUES ")
        many = _MANY_SQL[key] = "%s VALUES %s" % (head, ", ".join([group] * len(rows)))
    conn.execute(many, list(itertools.chain.from_iterable(rows)))


class TraceStore:
    """Append tasks and transitions; ``close()`` (or ``with``) commits the rest.

    Thread-safe: one lock guards the connection. ``clock`` (monotonic seconds) only times the
    flush interval; pass the emulator's clock and ``background_flush=False`` for virtual time
    (``background_commit`` needs real time: it is refused without ``background_flush``).
    ``on_commit(store)`` runs after each successful commit (e.g. to report progress).
    """

    def __init__(self, path: Union[str, Path], batch_size: int = 64, flush_interval_s: Optional[float] = 1.0,
                 max_rows: Optional[int] = None, max_bytes: Optional[int] = None, durable: bool = True,
                 background_flush: bool = True, clock: Callable[[], float] = time.monotonic,
                 on_commit: Optional[Callable[["TraceStore"], None]] = None, background_commit: bool = False):
        if batch_size < 1:
            raise TraceError("batch_size must be >= 1, got %r" % batch_size)
        if max_rows is not None and max_rows < 1:
            raise TraceError("max_rows must be >= 1, got %r" % max_rows)
        if max_bytes is not None and max_bytes < 64 * 1024:
            raise TraceError("max_bytes must be >= 64 KiB, got %r" % max_bytes)
        if background_commit and not background_flush:
            raise TraceError("background_commit needs background_flush (a writer thread on real time)")
        self.path = Path(path)
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self._clock = clock
        self._on_commit = on_commit
        self._lock = threading.RLock()
        self._pending = 0
        self._pending_since = 0.0
        self._last_task_id = None  # type: Optional[int]
        self.last_committed_task_id = None  # type: Optional[int]
        self.committed_rows = 0
        self.writable = True
        self.unwritten_rows = 0
        self.last_error = ""
        self._batch = []  # type: List[tuple]
        self._backlog = collections.deque()  # type: collections.deque
        self._retry_at = 0.0
        self.run_id = None  # type: Optional[str]
        self._conn = self._open(durable)
        self._closed = False
        self._stop = threading.Event()
        self._flusher = None  # type: Optional[threading.Thread]
        # background_commit: rows checked and encoded by the caller, waiting for the writer thread.
        self.background_commit = background_commit
        self._handoff = threading.Condition(threading.Lock())  # the writer waits on it; callers wake it
        # Callers append under their own lock, so a task never waits for the writer's lock; the writer
        # pops from the other end (a deque is safe for that without a shared lock).
        self._producer = threading.Lock()
        self._queued = collections.deque()  # type: collections.deque  # (sql, row or raw values, encoded?)
        self._queued_since = 0.0
        self._in_flight = 0  # rows the writer took and has not committed yet
        self._drainers = 0  # callers waiting in _drain for the queue to be written
        self._hand_off_at = max(1, batch_size // 2)
        self._woken = False  # the writer was told half a batch waits (callers wake it once, not per row)
        self.writer_wait_s = 0.0  # seconds callers waited for the writer with a whole batch uncommitted
        self.refused_rows = 0  # raw rows the writer could not store (a value out of range), each logged
        self._transition_row = TransitionRows()
        if background_commit:
            self._flusher = threading.Thread(target=self._writer_loop, name="trace-writer", daemon=True)
            self._flusher.start()
        elif background_flush and flush_interval_s:
            self._flusher = threading.Thread(target=self._flush_loop, name="trace-flush", daemon=True)
            self._flusher.start()

    # ------------------------------------------------------------ opening and closing

    def _open(self, durable: bool) -> sqlite3.Connection:
        if self.path.is_dir():
            raise TraceError("%s: is a directory; give a database file path" % self.path)
        if not self.path.parent.is_dir():
            raise TraceError("%s: directory %s does not exist" % (self.path, self.path.parent))
        try:
            conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False, timeout=5.0)
        except sqlite3.Error as exc:
            raise TraceError("%s: cannot open trace database (%s)" % (self.path, exc)) from None
        try:
            create_or_migrate(conn, str(self.path))
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise TraceError("%s: the filesystem does not support SQLite WAL mode (got %r): put the trace "
                                 "database on a local disk" % (self.path, mode))
            conn.execute("PRAGMA synchronous=%s" % ("FULL" if durable else "NORMAL"))
            conn.execute("PRAGMA journal_size_limit=%d" % WAL_LIMIT_BYTES)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise TraceError("%s: cannot use as a trace database (%s)" % (self.path, exc)) from None
        except BaseException:
            conn.close()
            raise
        return conn

    def close(self) -> None:
        """Commit what is pending, stop the flusher, checkpoint and close. Safe to call twice."""
        if self.background_commit:
            self._stop_writer()
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._stop.set()
            try:
                self._commit()
                if not self.writable:
                    self._retry(force=True)
                if self._backlog:
                    self.unwritten_rows += len(self._backlog)
                    log.warning("%s: %d trace rows could not be written before closing (%s); %d rows in all were "
                                "not written", self.path, len(self._backlog), self.last_error, self.unwritten_rows)
                    self._backlog.clear()
                try:
                    self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                except _DISK_ERRORS as exc:  # the committed rows are safe in the WAL; the next open checkpoints
                    log.warning("%s: checkpoint at close failed: %s", self.path, exc)
            finally:
                self._conn.close()
        if self._flusher is not None and self._flusher is not threading.current_thread():
            self._flusher.join(timeout=5.0)

    def __enter__(self) -> "TraceStore":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # ------------------------------------------------------------ writing

    def start_run(self, board: Optional[str] = None, bundle_hash: Optional[str] = None,
                  versions: Optional[Mapping[str, Any]] = None, config: Optional[Mapping[str, Any]] = None,
                  run_id: Optional[str] = None, started_s: Optional[float] = None) -> str:
        """Record a run (committed at once) and make it the default for later records."""
        run_id = run_id or uuid.uuid4().hex
        row = (run_id, time.time() if started_s is None else float(started_s), board, bundle_hash,
               dumps(versions or {}, "runs.versions"), dumps(config or {}, "runs.config"))
        with self._lock:
            self._check_open()
            self._begin()
            try:
                self._conn.execute("INSERT INTO runs (run_id, started_s, board, bundle_hash, versions, config) "
                                   "VALUES (?, ?, ?, ?, ?, ?)", row)
            except sqlite3.IntegrityError:
                raise TraceError("%s: run %r already exists: use a new run id" % (self.path, run_id)) from None
            self._commit()
            self.run_id = run_id
        return run_id

    def log_task(self, task: TaskRecord) -> None:
        """Check and encode the task's row now (a bad value raises TraceError here) and write or queue it."""
        run_id = task.run_id or self.run_id or self._run_of(None, "task %r" % task.task_id)
        self._put(_INSERT_TASK, task_row((
            run_id, task.task_id, task.arrival_s, task.deadline_s, task.exit, task.cut, task.segment_times,
            task.bytes_sent, task.transfer_s, task.entropies, task.bandwidth_bps, task.fallback, task.result,
            task.label, task.rating, task.latency_s, task.policy_id, task.energy, task.arm)))

    def log_transition(self, transition: TransitionRecord) -> None:
        run_id = transition.run_id or self.run_id or self._run_of(None, "transition %r" % transition.step)
        try:
            row = self._transition_row((run_id, transition.step, transition.time_s, transition.state,
                                        transition.action, transition.reward, transition.next_state,
                                        transition.policy_id))
        except TraceError as exc:
            raise TraceError("transition %r: %s" % (transition.step, exc)) from None
        self._put(_INSERT_TRANSITION, row)

    def log_task_values(self, values: tuple) -> None:
        """A task as raw values in ``TASK_FIELDS`` order (``entropies`` a mapping or (exit id, entropy) pairs),
        the device loop's path. With ``background_commit`` the writer thread checks and encodes them (as
        ``log_task`` would): the caller only queues a tuple it already holds, and a value the writer refuses
        is logged by task and field and counted in ``refused_rows``. Without it they are checked now. The
        caller must not change the dicts and lists it passes afterwards."""
        if values[0] is None:
            values = (self._run_of(None, "task %r" % (values[1],)),) + tuple(values[1:])
        if self.background_commit:
            self._enqueue(_INSERT_TASK, values, False)
        else:
            self._put(_INSERT_TASK, raw_task_row(values))

    def log_transition_values(self, values: tuple) -> None:
        """A controller step as raw values in ``TRANSITION_FIELDS`` order; as ``log_task_values``. A ``state``
        that is the tuple given as the previous step's ``next_state`` is encoded once."""
        if values[0] is None:
            values = (self._run_of(None, "transition %r" % (values[1],)),) + tuple(values[1:])
        if self.background_commit:
            self._enqueue(_INSERT_TRANSITION, values, False)
        else:
            self._put(_INSERT_TRANSITION, self._transition_row(values))

    def write_rows(self, queued: List[Tuple[str, tuple, bool]]) -> None:
        """(table, row or raw values, encoded?) for each row, as the writer process receives them: insert them
        and commit (a synchronous store's own path; raw values are checked and encoded here)."""
        with self._lock:
            self._check_open()
            self._write_queued([(_SQL[table], values, encoded) for table, values, encoded in queued])

    def retry_backlog(self) -> None:
        """Try the backlog again when the disk refused writes and RETRY_S has passed (the writer process's idle tick)."""
        with self._lock:
            if not self.writable and not self._closed:
                self._retry()

    def _put(self, sql: str, row: tuple) -> None:
        """An encoded row: queued for the writer, or written into the open batch."""
        if self.background_commit:
            self._enqueue(sql, row, True)
            return
        with self._lock:
            self._write(sql, row, (_KIND[sql], row[1], row[0]))
            if sql is _INSERT_TASK:
                self._last_task_id = row[1]
            self._after_write()

    def set_feedback(self, task_id: int, label: Optional[int] = None, rating: Optional[float] = None,
                     run_id: Optional[str] = None) -> bool:
        """Late feedback for a logged task: its true ``label`` and/or the application's ``rating`` (any
        finite number, stored as given). A value left None keeps what the row holds. False if the task
        is unknown (not logged in that run, or dropped by the size cap)."""
        what = "feedback for task %r" % task_id
        if label is None and rating is None:
            raise TraceError("%s: give a label, a rating or both" % what)
        assignments, values = [], []  # type: List[str], List[Any]
        if label is not None:
            if isinstance(label, bool) or not hasattr(label, "__index__"):  # int or numpy integer; not 3.5, not "3"
                raise TraceError("%s: label must be an integer, got %r" % (what, label))
            assignments.append("label = ?")
            values.append(operator.index(label))
        if rating is not None:
            assignments.append("rating = ?")
            values.append(finite_float(rating, what + ": rating"))
        run_id = self._run_of(run_id, what)
        self._drain()  # the task's row may still wait for the writer
        with self._lock:
            self._check_open()
            if not self.writable:
                raise TraceError("%s: the trace database cannot be written now (%s): %s not stored, send it again "
                                 "later" % (self.path, self.last_error, what))
            try:
                self._begin()
                cursor = self._conn.execute("UPDATE tasks SET %s WHERE run_id = ? AND task_id = ?"
                                            % ", ".join(assignments), values + [run_id, int(task_id)])
            except _DISK_ERRORS as exc:
                self._failed(exc, [])
                raise TraceError("%s: the trace database cannot be written now (%s): %s not stored"
                                 % (self.path, exc, what)) from None
            self._after_write()
            return cursor.rowcount > 0

    def set_label(self, task_id: int, label: int, run_id: Optional[str] = None) -> bool:
        """Late feedback: set a task's true label. False if the task is unknown (or dropped by the cap)."""
        return self.set_feedback(task_id, label=label, run_id=run_id)

    def flush(self) -> None:
        """Commit now (and try the backlog again, when the disk refused writes)."""
        self._drain()
        with self._lock:
            self._check_open()
            self._commit()
            if not self.writable:
                self._retry(force=True)

    @property
    def backlog_rows(self) -> int:
        """Rows waiting in memory for the disk to take them again."""
        return len(self._backlog)

    # ------------------------------------------------------------ internals

    def _run_of(self, run_id: Optional[str], what: str) -> str:
        run_id = run_id or self.run_id
        if run_id is None:
            raise TraceError("%s: no run: call start_run() first or give run_id" % what)
        return run_id

    def _check_open(self) -> None:
        if self._closed:
            raise TraceError("%s: the trace store is closed" % self.path)

    def _begin(self) -> None:
        if not self._conn.in_transaction:
            self._conn.execute("BEGIN IMMEDIATE")
            self._pending_since = self._clock()

    def _write(self, sql: str, row: tuple, what: tuple) -> None:
        self._check_open()
        if not self.writable:
            self._keep([(sql, row)])
            self._retry()
            return
        try:
            self._begin()
            self._conn.execute(sql, row)
        except sqlite3.IntegrityError as exc:
            raise TraceError("%s: already logged (%s)" % (_describe(what), exc)) from None
        except _DISK_ERRORS as exc:
            self._failed(exc, [(sql, row)])
            return
        self._batch.append((sql, row))
        self._pending += 1

    def _after_write(self) -> None:
        if self._pending >= self.batch_size or (
                self.flush_interval_s is not None and self._clock() - self._pending_since >= self.flush_interval_s):
            self._commit()

    def _commit(self) -> None:
        if not self._conn.in_transaction:
            return
        try:
            self._enforce_cap()
            self._conn.execute("COMMIT")
        except _DISK_ERRORS as exc:
            self._failed(exc, [])
            return
        self.committed_rows += self._pending
        self._pending = 0
        self._batch = []
        if self._last_task_id is not None:
            self.last_committed_task_id = self._last_task_id
        if self._on_commit is not None:
            self._on_commit(self)

    # ------------------------------------------------------------ background commit

    def _enqueue(self, sql: str, row: tuple, encoded: bool) -> None:
        queued = self._queued
        with self._producer:
            # At most batch_size rows uncommitted: a write waits for the writer when it is that far behind.
            if len(queued) + self._in_flight >= self.batch_size or self._stop.is_set():
                self._wait_for_room()
            if not queued:
                self._queued_since = self._clock()
            queued.append((sql, row, encoded))
        if len(queued) >= self._hand_off_at and not self._woken:  # half a batch: the writer takes it now
            self._woken = True
            with self._handoff:
                self._handoff.notify_all()

    def _wait_for_room(self) -> None:
        started = time.perf_counter()
        with self._handoff:
            while len(self._queued) + self._in_flight >= self.batch_size and self._writer_alive():
                self._handoff.notify_all()
                self._handoff.wait(0.5)
            self.writer_wait_s += time.perf_counter() - started
            if self._stop.is_set() or not self._writer_alive():
                raise TraceError("%s: the trace store is closed" % self.path)

    def _drain(self) -> None:
        """Wait until every queued row is in the database (committed, or in the backlog of a refusing disk)."""
        if not self.background_commit:
            return
        with self._handoff:
            self._drainers += 1
            try:
                while (self._queued or self._in_flight) and self._writer_alive():
                    self._handoff.notify_all()
                    self._handoff.wait(0.05)
            finally:
                self._drainers -= 1

    def _writer_alive(self) -> bool:
        return self._flusher is not None and self._flusher.is_alive()

    def _stop_writer(self) -> None:
        with self._handoff:
            self._stop.set()
            self._handoff.notify_all()
        if self._flusher is not None and self._flusher is not threading.current_thread():
            self._flusher.join(timeout=30.0)

    def _take_queue(self) -> List[tuple]:
        """The queued rows once half a batch, the flush interval or a stop asks for them ([] when stopping)."""
        interval = self.flush_interval_s
        queued = self._queued
        with self._handoff:
            while True:
                waited = self._clock() - self._queued_since
                count = len(queued)
                if count and (count >= self._hand_off_at or self._stop.is_set() or
                              (interval is not None and waited >= interval) or self._drainers):
                    # Counted in flight before they leave the queue: a caller never sees fewer than are uncommitted.
                    self._in_flight = count
                    rows = [queued.popleft() for _ in range(count)]
                    self._woken = False
                    if queued:  # appended meanwhile: their wait starts now
                        self._queued_since = self._clock()
                    return rows
                if self._stop.is_set():
                    return []
                if not self.writable and self._clock() >= self._retry_at:
                    return []  # a refusing disk is tried again every RETRY_S, rows or not
                # Like the flusher: look every half interval, so a row waits at most 1.5 intervals; the
                # writer is not woken per row.
                timeout = RETRY_S if interval is None else interval / 2.0
                if count and interval is not None:
                    timeout = min(timeout, max(interval - waited, 0.001))
                self._handoff.wait(min(timeout, RETRY_S))

    def _writer_loop(self) -> None:
        while True:
            rows = self._take_queue()
            try:
                with self._lock:
                    if rows and not self._closed:
                        self._write_queued(rows)
                    elif not self.writable and not self._closed:
                        self._retry()
            except Exception:  # e.g. a failing on_commit callback: the writer must outlive it
                log.exception("%s: the trace writer failed on %d rows", self.path, len(rows))
            with self._handoff:
                self._in_flight = 0
                self._handoff.notify_all()
                if self._stop.is_set() and not self._queued:
                    return

    def _write_queued(self, queued: List[tuple]) -> None:
        """Insert the rows the callers queued and commit them (or keep them, when the disk refuses)."""
        rows = self._encode_queued(queued)
        rest = self._insert_together(rows) if self.writable else rows
        for sql, row, what, task_id in rest:  # one by one: a duplicate among them is skipped and said
            try:
                self._write(sql, row, what)
            except TraceError as exc:  # a task logged twice: its caller has moved on, so say it here
                log.error("%s: row not written: %s", self.path, exc)
                continue
            if task_id is not None:
                self._last_task_id = task_id
        self._commit()
        if not self.writable:
            self._retry()

    def _encode_queued(self, queued: List[tuple]) -> List[tuple]:
        """(sql, row, what, task id) for each queued row, raw values checked and encoded here; one that cannot be
        stored is logged by task and field, counted in ``refused_rows`` and left out."""
        rows = []
        transition_row = self._transition_row
        for sql, values, encoded in queued:
            if not encoded:
                try:
                    values = raw_task_row(values) if sql is _INSERT_TASK else transition_row(values)
                except (TraceError, TypeError, ValueError) as exc:
                    self.refused_rows += 1
                    log.error("%s: row not written: %s: %s", self.path, _describe((_KIND[sql], values[1], values[0])),
                              exc)
                    continue
            rows.append((sql, values, (_KIND[sql], values[1], values[0]), values[1] if sql is _INSERT_TASK else None))
        return rows

    def _insert_together(self, rows: List[tuple]) -> List[tuple]:
        """Insert the rows with one statement per table and chunk: SQLite then runs without the GIL for a
        batch rather than a row, and the task thread seldom waits for this one. A statement refused (a task
        logged twice) inserts nothing, so its rows and every later one are returned, to go one by one."""
        tables = collections.OrderedDict()  # type: Dict[str, List[tuple]]
        for queued in rows:
            tables.setdefault(queued[0], []).append(queued)
        self._check_open()
        written = []  # type: List[tuple]
        try:
            self._begin()
            for sql, group in tables.items():
                step = _rows_per_statement(group[0][1])
                for start in range(0, len(group), step):
                    chunk = group[start:start + step]
                    try:
                        _insert_many(self._conn, sql, [queued[1] for queued in chunk])
                    except sqlite3.IntegrityError:
                        self._wrote(written)
                        done = set(map(id, written))
                        return [queued for queued in rows if id(queued) not in done]
                    written.extend(chunk)
        except _DISK_ERRORS as exc:
            self._failed(exc, [(sql, row) for sql, row, _, _ in rows])  # all rolled back: all kept, in order
            return []
        self._wrote(written)
        return []

    def _wrote(self, rows: List[tuple]) -> None:
        """Rows now in the open transaction."""
        self._batch.extend((sql, row) for sql, row, _, _ in rows)
        self._pending += len(rows)
        for _, _, _, task_id in reversed(rows):
            if task_id is not None:
                self._last_task_id = task_id
                break

    def _flush_loop(self) -> None:
        interval = float(self.flush_interval_s or 1.0)
        while not self._stop.wait(interval / 2.0):
            with self._lock:
                if self._closed:
                    return
                if not self.writable:
                    self._retry()
                elif self._conn.in_transaction and self._clock() - self._pending_since >= interval:
                    self._commit()

    # ------------------------------------------------------------ a full or failing disk

    def _failed(self, exc: Exception, rows: List[tuple]) -> None:
        """A write or commit failed: roll back, keep the transaction's rows in memory, stop writing."""
        try:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # SQLite rolls back by itself on some errors
        self._keep(self._batch + rows)
        self._batch = []
        self._pending = 0
        if self.writable:
            log.warning("%s: cannot write traces (%s): tasks are still answered; up to %d rows wait in memory, "
                        "later ones are counted as unwritten; writing resumes when the disk takes them",
                        self.path, exc, MAX_BACKLOG_ROWS)
        self.writable = False
        self.last_error = str(exc)
        self._retry_at = self._clock() + RETRY_S

    def _keep(self, rows: List[tuple]) -> None:
        self._backlog.extend(rows)
        while len(self._backlog) > MAX_BACKLOG_ROWS:
            self._backlog.popleft()
            self.unwritten_rows += 1

    def _retry(self, force: bool = False) -> None:
        """Write the backlog in one transaction when the disk takes it; otherwise wait RETRY_S more."""
        if not force and self._clock() < self._retry_at:
            return
        self._retry_at = self._clock() + RETRY_S
        rows = list(self._backlog)
        skipped = 0
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            for sql, row in rows:
                try:
                    self._conn.execute(sql, row)
                except sqlite3.IntegrityError:
                    skipped += 1  # already in the database: nothing to write
            self._enforce_cap()
            self._conn.execute("COMMIT")
        except _DISK_ERRORS as exc:
            try:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            self.last_error = str(exc)
            return
        self._backlog.clear()
        self.committed_rows += len(rows) - skipped
        self.writable = True
        log.warning("%s: trace writes resumed: %d rows kept in memory are written; %d rows were lost while the "
                    "disk refused writes", self.path, len(rows) - skipped, self.unwritten_rows)

    # ------------------------------------------------------------ size cap

    def _span(self, table: str):
        lo, hi = self._conn.execute("SELECT min(seq), max(seq) FROM %s" % table).fetchone()
        return (0, lo, hi) if lo is None else (hi - lo + 1, lo, hi)

    def _drop_oldest(self, table: str, count: int) -> int:
        # Rows are only ever deleted from the old end, so seq is contiguous and [lo, lo + count) are the oldest.
        _, lo, _ = self._span(table)
        if lo is None or count <= 0:
            return 0
        deleted = self._conn.execute("DELETE FROM %s WHERE seq < ?" % table, (lo + count,)).rowcount
        self._conn.execute("UPDATE dropped SET rows = rows + ?, last_dropped_s = ? WHERE table_name = ?",
                           (deleted, time.time(), table))
        log.info("%s: size cap: dropped the %d oldest rows of %s", self.path, deleted, table)
        return deleted

    def _used_bytes(self) -> int:
        page_size = self._conn.execute("PRAGMA page_size").fetchone()[0]
        pages = self._conn.execute("PRAGMA page_count").fetchone()[0]
        free = self._conn.execute("PRAGMA freelist_count").fetchone()[0]
        return (pages - free) * page_size

    def _enforce_cap(self) -> None:
        if self.max_rows is not None:
            for table in DATA_TABLES:
                rows = self._span(table)[0]
                if rows > self.max_rows:
                    self._drop_oldest(table, rows - self.max_rows)
        if self.max_bytes is not None:
            while self._used_bytes() > self.max_bytes:
                sizes = {table: self._span(table)[0] for table in DATA_TABLES}
                table = max(sizes, key=sizes.get)
                if sizes[table] == 0:
                    break
                self._drop_oldest(table, max(1, sizes[table] // _DROP_FRACTION))


def default_versions() -> Dict[str, str]:
    """Versions worth recording with a run, read without importing heavy packages."""
    import platform
    from edgesplit.runtime import __version__

    versions = {"edgesplit": __version__, "python": platform.python_version(), "sqlite": sqlite3.sqlite_version}
    try:
        from importlib import metadata
    except ImportError:  # Python < 3.8 has no importlib.metadata
        return versions
    for package in ("numpy", "onnxruntime", "pyzmq"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return versions
