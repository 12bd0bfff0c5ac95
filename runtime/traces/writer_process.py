"""The trace writer process: SQLite and the rows' encoding in a child process, outside the daemon's GIL.

``ProcessTraceStore`` has the ``TraceStore`` API the device pipeline and the daemon use. The task's thread
appends each row as a tuple of raw values to a buffer; at half a batch it pickles the buffer and sends it
over a socket pair to the writer process, which checks and encodes the values, inserts them and commits
(``TraceStore.write_rows``: the same code, duplicates, size cap and full-disk backlog as in-process) and
answers with its counters. No second Python thread of the daemon wakes per batch: a writer thread would
need the GIL several times per commit and, while the task's thread runs Python, wait for it (up to the
interpreter's 5 ms switch interval each time), which is what made tasks wait for the writer.

Durability bound (the same as ``TraceStore(background_commit=True)``): rows buffered, sent and not yet
acknowledged as committed are at most ``batch_size``; a row that would pass it waits for the writer's
answer. A power cut, a SIGKILL of the daemon or of the writer loses at most those rows. A flusher thread
sends a buffer older than ``flush_interval_s`` (it wakes every quarter second at most) and notices a writer
process that died.

Shutdown. The writer ignores SIGTERM and SIGINT (systemd sends SIGTERM to the whole unit): it ends when
the daemon closes the store (it commits what it holds, checkpoints, answers, exits), or when the socket
closes because the daemon itself died (it commits what it received and exits).

A writer that dies is reported: an ERROR naming its pid and how it ended, and how many rows it had not
acknowledged (counted in ``unwritten_rows``, ``writer_deaths`` and ``last_error``); a new writer is started
at once, so later rows are written. If none starts, rows are counted as unwritten and a start is tried
again every ``RETRY_S``.
"""
import logging
import multiprocessing
import pickle
import select
import signal
import subprocess
import sys
import threading
import time
import uuid
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from edgesplit.runtime.traces.errors import TraceError
from edgesplit.runtime.traces.records import TaskRecord, TransitionRecord
from edgesplit.runtime.traces.store import RETRY_S, TraceStore, TransitionRows, task_row

log = logging.getLogger(__name__)

START_TIMEOUT_S = 60.0  # a board's SD card and a cold Python: importing numpy can take seconds
CLOSE_TIMEOUT_S = 60.0
TICK_S = 0.25  # the flusher's longest sleep: how soon a dead writer or an old buffer is noticed
_COUNTERS = ("committed_rows", "unwritten_rows", "refused_rows")


def _ended(code: Optional[int]) -> str:
    if code is None:
        return "stopped answering"
    if code < 0:
        return "was killed by signal %d" % -code
    return "exited with status %d" % code


class WriterDied(Exception):
    """The writer process is gone (internal: handled by restarting it)."""


class _Channel:
    """One end of the socket pair: ``Connection``'s framing and plain pickles, with a poll that is one poll(2) call.

    ``Connection.poll`` builds a selector per call (4-5 us); the task's thread polls after each batch it sends,
    and the writer before each message it reads. A closed peer reads as ready (POLLHUP), then ``recv`` raises
    EOFError, as with ``Connection``."""

    def __init__(self, conn: Connection):
        self.conn = conn
        self._poller = select.poll()
        self._poller.register(conn.fileno(), select.POLLIN)

    def poll(self, timeout: float) -> bool:
        return bool(self._poller.poll(int(timeout * 1000.0 + 0.999)))  # milliseconds, rounded up

    def send(self, message: Any) -> None:
        self.conn.send_bytes(pickle.dumps(message, pickle.HIGHEST_PROTOCOL))

    def recv(self) -> Any:
        return pickle.loads(self.conn.recv_bytes())

    def close(self) -> None:
        self.conn.close()


class ProcessTraceStore:
    """``TraceStore`` with its writing in a child process (see the module's doc). Thread-safe."""

    background_commit = True

    def __init__(self, path: Union[str, Path], batch_size: int = 64, flush_interval_s: Optional[float] = 1.0,
                 max_rows: Optional[int] = None, max_bytes: Optional[int] = None, durable: bool = True):
        if batch_size < 1:
            raise TraceError("batch_size must be >= 1, got %r" % batch_size)
        self.path = Path(path)
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self._settings = dict(path=str(path), batch_size=batch_size, flush_interval_s=flush_interval_s,
                              max_rows=max_rows, max_bytes=max_bytes, durable=durable)
        self._hand_off_at = max(1, batch_size // 2)
        self._channel = threading.Lock()  # the socket, the buffer and the counters
        self._buffer = []  # type: List[Tuple[str, tuple, bool]]  # (table, values, encoded?) not sent yet
        self._buffer_since = 0.0
        self._unacked = 0  # rows sent and not yet acknowledged as written
        self._transitions = TransitionRows()
        self._stats = {}  # type: Dict[str, Any]  # the current writer's counters
        self._earlier = dict.fromkeys(_COUNTERS, 0)  # counters of writers that died
        self._lost = 0  # rows a dead writer had not acknowledged, and rows no writer could take
        self._conn = None  # type: Optional[_Channel]
        self._process = None  # type: Optional[subprocess.Popen]
        self._restart_at = 0.0
        self._closed = False
        self.run_id = None  # type: Optional[str]
        self.writer_wait_s = 0.0
        self.writer_deaths = 0
        self._error = ""  # what happened to a writer process (the writer's own, a refusing disk, is in _stats)
        self._start()
        self._stop = threading.Event()
        self._flusher = threading.Thread(target=self._flush_loop, name="trace-flush", daemon=True)
        self._flusher.start()

    # ------------------------------------------------------------ counters (the writer's, summed over restarts)

    @property
    def writer_pid(self) -> Optional[int]:
        return None if self._process is None else self._process.pid

    @property
    def committed_rows(self) -> int:
        return self._earlier["committed_rows"] + self._stats.get("committed_rows", 0)

    @property
    def refused_rows(self) -> int:
        return self._earlier["refused_rows"] + self._stats.get("refused_rows", 0)

    @property
    def unwritten_rows(self) -> int:
        return self._earlier["unwritten_rows"] + self._stats.get("unwritten_rows", 0) + self._lost

    @property
    def writable(self) -> bool:
        return self._conn is not None and self._stats.get("writable", True)

    @property
    def backlog_rows(self) -> int:
        return self._stats.get("backlog_rows", 0)

    @property
    def last_error(self) -> str:
        """The last writer process's death or start failure, and the disk's last refusal, as far as known."""
        return "; ".join(error for error in (self._error, self._stats.get("last_error", "")) if error)

    @property
    def last_committed_task_id(self) -> Optional[int]:
        return self._stats.get("last_committed_task_id")

    # ------------------------------------------------------------ the API

    def start_run(self, board: Optional[str] = None, bundle_hash: Optional[str] = None,
                  versions: Optional[Mapping[str, Any]] = None, config: Optional[Mapping[str, Any]] = None,
                  run_id: Optional[str] = None, started_s: Optional[float] = None) -> str:
        run_id = run_id or uuid.uuid4().hex
        self._call("start_run", board=board, bundle_hash=bundle_hash, versions=dict(versions or {}),
                   config=dict(config or {}), run_id=run_id, started_s=time.time() if started_s is None else started_s)
        self.run_id = run_id
        return run_id

    def log_task(self, task: TaskRecord) -> None:
        """Checked and encoded here (a bad value raises TraceError now), written by the writer."""
        run_id = task.run_id or self._run_of("task %r" % task.task_id)
        self._append("task", task_row((
            run_id, task.task_id, task.arrival_s, task.deadline_s, task.exit, task.cut, task.segment_times,
            task.bytes_sent, task.transfer_s, task.entropies, task.bandwidth_bps, task.fallback, task.result,
            task.label, task.rating, task.latency_s, task.policy_id, task.energy, task.arm)), True)

    def log_transition(self, transition: TransitionRecord) -> None:
        run_id = transition.run_id or self._run_of("transition %r" % transition.step)
        try:
            row = self._transitions((run_id, transition.step, transition.time_s, transition.state, transition.action,
                                     transition.reward, transition.next_state, transition.policy_id))
        except TraceError as exc:
            raise TraceError("transition %r: %s" % (transition.step, exc)) from None
        self._append("transition", row, True)

    def log_task_values(self, values: tuple) -> None:
        """As ``TraceStore.log_task_values``: the writer process checks and encodes them."""
        if values[0] is None:
            values = (self._run_of("task %r" % (values[1],)),) + tuple(values[1:])
        self._append("task", values, False)

    def log_transition_values(self, values: tuple) -> None:
        if values[0] is None:
            values = (self._run_of("transition %r" % (values[1],)),) + tuple(values[1:])
        self._append("transition", values, False)

    def set_feedback(self, task_id: int, label: Optional[int] = None, rating: Optional[float] = None,
                     run_id: Optional[str] = None) -> bool:
        return bool(self._call("set_feedback", task_id, label=label, rating=rating,
                               run_id=run_id or self._run_of("feedback for task %r" % task_id)))

    def set_label(self, task_id: int, label: int, run_id: Optional[str] = None) -> bool:
        return self.set_feedback(task_id, label=label, run_id=run_id)

    def flush(self) -> None:
        """Every row logged so far committed (or in the writer's backlog of a refusing disk)."""
        self._call("flush")

    def close(self) -> None:
        """Send the rest, let the writer commit, checkpoint and exit. Safe to call twice."""
        self._stop.set()
        with self._channel:
            if self._closed:
                return
            self._closed = True
            try:
                for _ in range(2):  # a writer that dies now hands the rest to one more, if one starts
                    if self._conn is None:
                        break
                    try:
                        self._ship()
                        self._send(("close",))
                        self._await_reply(CLOSE_TIMEOUT_S)
                        break
                    except WriterDied:
                        self._died()
            except TraceError as exc:
                log.error("%s: closing the trace writer: %s", self.path, exc)
            finally:
                if self._buffer:  # no writer took them: said and counted, never dropped silently
                    self._lost += len(self._buffer)
                    log.error("%s: %d rows not written: no trace writer process at close (%s)", self.path,
                              len(self._buffer), self.last_error)
                    self._buffer = []
                self._end_process()
        if self._flusher is not threading.current_thread():
            self._flusher.join(timeout=5.0)

    def __enter__(self) -> "ProcessTraceStore":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # ------------------------------------------------------------ rows

    def _run_of(self, what: str) -> str:
        if self.run_id is None:
            raise TraceError("%s: no run: call start_run() first or give run_id" % what)
        return self.run_id

    def _append(self, table: str, values: tuple, encoded: bool) -> None:
        with self._channel:
            if self._closed:
                raise TraceError("%s: the trace store is closed" % self.path)
            if self._conn is None and not self._restart():
                self._lost += 1  # no writer: counted, as a full disk's rows beyond the backlog are
                return
            if self._unacked + len(self._buffer) >= self.batch_size:
                self._wait_for_room()  # hands the buffer off first: self._buffer is another list after it
            buffer = self._buffer
            if not buffer:
                self._buffer_since = time.monotonic()
            buffer.append((table, values, encoded))
            if len(buffer) >= self._hand_off_at:
                self._ship()

    def _wait_for_room(self) -> None:
        """At most batch_size rows uncommitted: send what is buffered and wait for the writer's answers."""
        started = time.perf_counter()
        try:
            self._ship()
            while self._conn is not None and self._unacked + len(self._buffer) >= self.batch_size:
                try:
                    self._read(0.5)
                except WriterDied:
                    self._died()  # its unacknowledged rows are counted lost: room again, in a new writer
                self._ship()  # rows a dead writer never got are back in the buffer: the new one gets them
        finally:
            self.writer_wait_s += time.perf_counter() - started

    def _ship(self) -> None:
        """Send the buffer to the writer (nothing when it is empty); read the answers already there."""
        if not self._buffer or self._conn is None:
            return
        rows, self._buffer = self._buffer, []
        try:
            try:
                self._send(("rows", rows))
            except (pickle.PicklingError, TypeError, AttributeError):
                rows = self._send_one_by_one(rows)
        except WriterDied:
            self._died()
            self._buffer = rows + self._buffer  # never sent whole: they go to the next writer
            return
        self._unacked += len(rows)
        try:
            self._read(0.0)
        except WriterDied:
            self._died()  # these rows were sent: among its unacknowledged ones, counted lost (not sent twice)

    def _send_one_by_one(self, rows: List[tuple]) -> List[tuple]:
        """A batch that cannot be pickled: each row alone; one that cannot is logged and counted refused."""
        sent = []
        for row in rows:
            try:
                self._send(("rows", [row]))
            except (pickle.PicklingError, TypeError, AttributeError) as exc:
                self._earlier["refused_rows"] += 1
                log.error("%s: row not written: %s %r of run %s: cannot be sent to the writer (%s)", self.path,
                          row[0], row[1][1], row[1][0], exc)
                continue
            sent.append(row)
        return sent

    # ------------------------------------------------------------ the socket

    def _send(self, message: tuple) -> None:
        try:
            self._conn.send(message)
        except (BrokenPipeError, ConnectionError, EOFError, OSError) as exc:
            raise WriterDied(str(exc)) from None

    def _read(self, timeout: float) -> Optional[tuple]:
        """Handle the writer's messages waiting (or arriving within ``timeout``); return a reply if one came."""
        conn = self._conn
        try:
            while conn.poll(timeout):
                message = conn.recv()
                self._stats = message[-1]
                if message[0] == "written":
                    self._unacked -= message[1]
                    timeout = 0.0
                else:
                    return message
        except (EOFError, ConnectionError, OSError) as exc:
            raise WriterDied(str(exc)) from None
        if timeout and self._process.poll() is not None:
            raise WriterDied("exited")
        return None

    def _await_reply(self, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(0.5)
            if reply is not None:
                _, ok, value, _ = reply
                if not ok:
                    raise TraceError(value)
                return value
            if time.monotonic() > deadline:
                raise TraceError("%s: the trace writer process (pid %d) did not answer in %.0f s"
                                 % (self.path, self._process.pid, timeout))

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        with self._channel:
            if self._closed:
                raise TraceError("%s: the trace store is closed" % self.path)
            if self._conn is None and not self._restart():
                raise TraceError("%s: the trace writer process is not running (%s): try again later"
                                 % (self.path, self.last_error))
            try:
                self._ship()
                self._send(("call", name, args, kwargs))
                return self._await_reply(CLOSE_TIMEOUT_S)
            except WriterDied:
                self._died()
                raise TraceError("%s: the trace writer process died (%s): %s not done, try again"
                                 % (self.path, self.last_error, name)) from None

    # ------------------------------------------------------------ the process

    def _start(self) -> None:
        """Start a writer and open the database there; TraceError (the writer's own message) if it cannot."""
        parent, child = multiprocessing.Pipe()
        fd = child.fileno()
        try:
            process = subprocess.Popen([sys.executable, "-m", __name__, str(fd)], pass_fds=(fd,),
                                       stdin=subprocess.DEVNULL)
        except (OSError, TypeError, ValueError) as exc:  # TypeError: no sys.executable
            parent.close()
            raise TraceError("%s: cannot start the trace writer process with %r (%s); set [traces] writer = "
                             "\"thread\"" % (self.path, sys.executable, exc)) from None
        finally:
            child.close()
        self._conn, self._process = _Channel(parent), process
        try:
            self._send(("open", self._settings))
            self._await_reply(START_TIMEOUT_S)
        except (WriterDied, TraceError) as exc:
            self._end_process()
            if isinstance(exc, TraceError):
                raise
            raise TraceError("%s: the trace writer process %s before opening the database (see its error above); "
                             "if it cannot run here, set [traces] writer = \"thread\"" % (self.path, _ended(process.poll()))) from None
        self._unacked = 0

    def _restart(self) -> bool:
        if time.monotonic() < self._restart_at:
            return False
        self._restart_at = time.monotonic() + RETRY_S
        try:
            self._start()
        except TraceError as exc:
            self._error = str(exc)
            log.error("%s: no trace writer process: %s; rows are counted as unwritten until one starts (tried again "
                      "every %.0f s)", self.path, exc, RETRY_S)
            return False
        if self.run_id is not None:
            log.warning("%s: a new trace writer process (pid %d) writes run %s", self.path, self._process.pid,
                        self.run_id)
        return True

    def _died(self) -> None:
        """Report a writer that is gone, count what it had not acknowledged, and start another."""
        process = self._process
        self._end_process()
        lost, self._unacked = self._unacked, 0
        self._lost += lost
        for name in _COUNTERS:
            self._earlier[name] += self._stats.get(name, 0)
        self._stats = {}
        self.writer_deaths += 1
        self._error = "the trace writer process (pid %d) %s" % (process.pid, _ended(process.returncode))
        log.error("%s: %s: up to %d rows it had not committed are lost (tasks are still answered); starting a new "
                  "writer", self.path, self._error, lost)
        self._restart_at = 0.0
        self._restart()

    def _end_process(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        process = self._process
        if process is not None and process.poll() is None:
            try:
                process.wait(timeout=CLOSE_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log.error("%s: the trace writer process (pid %d) did not exit; killing it", self.path, process.pid)
                process.kill()
                process.wait()

    def _flush_loop(self) -> None:
        interval = self.flush_interval_s
        tick = TICK_S if interval is None else min(TICK_S, interval / 2.0)
        while not self._stop.wait(tick):
            with self._channel:
                if self._closed:
                    return
                try:
                    if self._conn is None:
                        self._restart()
                        continue
                    if self._process.poll() is not None:
                        raise WriterDied("exited")
                    self._read(0.0)
                    if self._buffer and (interval is None or time.monotonic() - self._buffer_since >= interval):
                        self._ship()
                except WriterDied:
                    self._died()


# ---------------------------------------------------------------- the child

def _serve(conn: "_Channel") -> None:
    kind, settings = conn.recv()
    try:
        store = TraceStore(settings["path"], batch_size=settings["batch_size"],
                           flush_interval_s=settings["flush_interval_s"], max_rows=settings["max_rows"],
                           max_bytes=settings["max_bytes"], durable=settings["durable"], background_flush=False)
    except TraceError as exc:
        conn.send(("reply", False, str(exc), {}))
        return
    conn.send(("reply", True, None, _stats(store)))
    try:
        while True:
            if not conn.poll(RETRY_S):
                if not store.writable:  # a refusing disk is tried again even when no rows come
                    store.retry_backlog()
                    conn.send(("written", 0, _stats(store)))
                continue
            try:
                message = conn.recv()
            except EOFError:  # the daemon is gone: keep what it sent
                return
            if message[0] == "rows":
                rows, message = _with_waiting_rows(conn, message[1])
                store.write_rows(rows)
                conn.send(("written", len(rows), _stats(store)))
                if message is None:
                    continue
            if message[0] == "call":
                conn.send(_answer(store, message[1], message[2], message[3]))
            elif message[0] == "close":
                store.close()
                conn.send(("reply", True, None, _stats(store)))
                return
    finally:
        store.close()


def _with_waiting_rows(conn: "_Channel", rows: List[tuple]) -> Tuple[List[tuple], Optional[tuple]]:
    """The rows of every "rows" message already waiting behind this one (one commit, one fsync, for a writer that
    fell behind: a busy machine gave it no core), and the first other message, to handle after the commit.
    Never more than batch_size rows: the daemon sends no more while that many are unacknowledged."""
    while conn.poll(0):
        try:
            message = conn.recv()
        except EOFError:
            break
        if message[0] != "rows":
            return rows, message
        rows = rows + message[1]
    return rows, None


# Calls whose change the caller is told is stored: committed before the answer, not with the next batch of rows
# (this process has no commit timer; an idle board would otherwise hold a label in an open transaction).
_COMMITTED_CALLS = frozenset(("set_feedback", "set_label"))


def _answer(store: TraceStore, name: str, args: tuple, kwargs: Dict[str, Any]) -> tuple:
    try:
        value = getattr(store, name)(*args, **kwargs)
        if name in _COMMITTED_CALLS:
            store.flush()
    except TraceError as exc:
        return ("reply", False, str(exc), _stats(store))
    return ("reply", True, value, _stats(store))


def _stats(store: TraceStore) -> Dict[str, Any]:
    return {"committed_rows": store.committed_rows, "unwritten_rows": store.unwritten_rows,
            "refused_rows": store.refused_rows, "writable": store.writable, "backlog_rows": store.backlog_rows,
            "last_committed_task_id": store.last_committed_task_id, "last_error": store.last_error}


def _name_process(name: str) -> None:
    """``top`` and ``ps -e`` show the writer under this name rather than as another python (Linux only)."""
    try:
        with open("/proc/self/comm", "w") as comm:
            comm.write(name[:15])
    except OSError:
        pass


def main(argv: List[str]) -> int:
    # The daemon decides when writing ends (it closes the store): systemd's SIGTERM to the unit's whole group,
    # or a Ctrl-C to the terminal's, must not stop this process before the daemon has sent its last rows.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the daemon's reload signal (systemctl kill -s HUP reaches us too)
    _name_process("es-trace-writer")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="edgesplit trace writer [%(process)d] %(levelname)s %(name)s: %(message)s")
    conn = _Channel(Connection(int(argv[0])))
    try:
        _serve(conn)
    finally:
        conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
