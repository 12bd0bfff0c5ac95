"""The local API's messages on a plain Unix stream socket: the same frames, length-prefixed.

A ZeroMQ message ``[header, tensor_0, ...]`` travels as::

    u32 frame count | u64 length of each frame | the frames, back to back     (little-endian)

and an answer is the same with one frame (the JSON reply). The connection opens with the daemon's
greeting, ``HELLO`` (8 bytes): a client that reads it knows the daemon serves this endpoint and
speaks this version; a daemon at its connection limit closes the connection instead.

Nothing received is trusted: the frame count, each length and the total are checked against the
receiver's limits before a byte of the frames is read, and a message must arrive within
``MESSAGE_TIMEOUT_S`` once its first byte has (a client that sends half a message and stalls loses
its connection, not a thread forever).
"""
import os
import socket
import struct
import time
from typing import Any, List, Optional, Sequence

_perf_counter = time.perf_counter
_yield = getattr(os, "sched_yield", lambda: time.sleep(0))  # Linux has it; elsewhere a plain GIL release

HELLO = b"ESAPI1\r\n"
_COUNT = struct.Struct("<I")
_LENGTH = struct.Struct("<Q")
MESSAGE_TIMEOUT_S = 10.0
MAX_SPIN_US = 100000  # a spin (ApiClient's spin_us, api.spin_us) costs at most 0.1 s of a core per wait
# Small messages (a header and an MNIST-sized image) arrive in one recv into this buffer.
_CHUNK = 64 * 1024


class StreamClosed(Exception):
    """The other side closed the connection (cleanly, between messages, when ``clean``)."""

    def __init__(self, detail: str, clean: bool = False):
        super().__init__(detail)
        self.clean = clean


class StreamRefused(Exception):
    """A received message broke a limit: ``detail`` says which. The connection cannot be trusted after."""

    def __init__(self, detail: str, header: Optional[bytes] = None):
        super().__init__(detail)
        self.detail = detail
        self.header = header  # the header frame when it could be read (to answer with its id)


# SO_RCVTIMEO / SO_SNDTIMEO take a C ``struct timeval``: two longs, except where Python was built against a 64-bit
# time_t on a 32-bit CPU (armhf with _TIME_BITS=64: the options are then Linux's SO_*TIMEO_NEW, 66 and 67, whose
# timeval is two 64-bit integers whatever the word size).
_TIMEVAL = struct.Struct("qq" if getattr(socket, "SO_RCVTIMEO", 0) == 66 else "ll")


def timeval(seconds: float) -> bytes:
    """``struct timeval`` for SO_RCVTIMEO / SO_SNDTIMEO; at least 1 us (0 would mean "wait forever")."""
    micros = max(1, int(round(seconds * 1e6)))
    return _TIMEVAL.pack(micros // 1000000, micros % 1000000)


def _buffer(frame: Any) -> memoryview:
    view = frame if isinstance(frame, memoryview) else memoryview(frame)
    if view.nbytes == 0:
        return memoryview(b"")  # an empty tensor (the daemon refuses it): cast() refuses zeros in a shape
    return view if view.ndim == 1 and view.format == "B" else view.cast("B")


def send_message(sock: socket.socket, frames: Sequence[Any], flags: int = 0) -> None:
    """Send ``frames`` (bytes, or C-contiguous arrays sent without copies) as one message. With
    ``socket.MSG_DONTWAIT`` a full socket buffer raises BlockingIOError, possibly mid-message."""
    views = [_buffer(frame) for frame in frames]
    prefix = _COUNT.pack(len(views)) + b"".join(_LENGTH.pack(view.nbytes) for view in views)
    pending = [memoryview(prefix)] + [view for view in views if view.nbytes]
    while pending:
        sent = sock.sendmsg(pending, [], flags)
        # A partial write (a large tensor, a full socket buffer): carry on from where it stopped.
        while pending and sent >= pending[0].nbytes:
            sent -= pending[0].nbytes
            pending.pop(0)
        if pending and sent:
            pending[0] = pending[0][sent:]


class MessageReader:
    """Reads whole messages from one connection, with the receiver's limits checked first."""

    def __init__(self, sock: socket.socket, max_frames: int, max_header_bytes: int, max_total_bytes: int,
                 spin_s: float = 0.0):
        self.sock = sock
        # Waiting for a message to begin, try non-blocking recvs for up to spin_s before a blocking one: a
        # message that comes within it wakes nobody (a sleeping thread's wake-up costs 10-30 us on a VM).
        # Only while messages come that soon: after a wait longer than spin_s, the next wait blocks at once,
        # until a message again comes within spin_s of being awaited. The socket must be blocking, with its
        # time limit in SO_RCVTIMEO: a Python timeout would poll() before every recv.
        self.spin_s = spin_s
        self._spin_worth = True
        self._wait_started = 0.0
        self.max_frames = max_frames
        self.max_header_bytes = max_header_bytes
        self.max_total_bytes = max_total_bytes
        self._chunk = bytearray(_CHUNK)
        self._view = memoryview(self._chunk)
        self._start = 0
        self._end = 0
        self._message_started = 0.0
        self._in_message = False

    def pause_spin(self) -> None:
        """The next wait sleeps at once (its message is known not to come soon); spinning resumes when one does."""
        self._spin_worth = False

    @property
    def spinning(self) -> bool:
        """Whether the next wait for a message spins first (``spin_s`` set, and the last message came within it)."""
        return self.spin_s > 0.0 and self._spin_worth

    def read(self, idle_check=None) -> List[bytes]:
        """The next message's frames. ``idle_check()`` is called whenever the socket's receive timeout
        passes with no message begun; it raises to stop waiting (the daemon stopping)."""
        # A message already begun in the buffer counts from now; otherwise from its first byte.
        self._in_message = self._end > self._start
        self._message_started = time.monotonic()
        self._wait_started = _perf_counter()
        count = _COUNT.unpack(self._take(_COUNT.size, idle_check))[0]
        if not 1 <= count <= self.max_frames:
            raise StreamRefused("a message has %d frames; the limit is %d" % (count, self.max_frames))
        lengths = struct.unpack("<%dQ" % count, self._take(_LENGTH.size * count))
        if lengths[0] > self.max_header_bytes:
            raise StreamRefused("header frame is %d bytes, the limit is %d" % (lengths[0], self.max_header_bytes))
        header = self._take(lengths[0])
        total = sum(lengths[1:])
        if total > self.max_total_bytes:
            raise StreamRefused("the message's tensor frames add up to %d bytes, more than %d (api.max_input_mb)"
                                % (total, self.max_total_bytes), header)
        return [header] + [self._take(length) for length in lengths[1:]]

    def _take(self, size: int, idle_check=None) -> Any:
        if self._end - self._start >= size:
            data = bytes(self._view[self._start:self._start + size])
            self._start += size
            return data
        if size > _CHUNK // 2:  # a large frame: its own buffer, filled straight from the socket
            out = bytearray(size)
            have = self._end - self._start
            out[:have] = self._view[self._start:self._end]
            self._start = self._end = 0
            target = memoryview(out)
            while have < size:
                have += self._recv_into(target[have:], idle_check)
            return out  # no copy: np.frombuffer takes it as it is
        if self._start:  # move what is left to the front, then fill after it
            left = self._end - self._start
            self._view[:left] = self._view[self._start:self._end]
            self._start, self._end = 0, left
        while self._end < size:
            self._end += self._recv_into(self._view[self._end:], idle_check)
        data = bytes(self._view[:size])
        self._start = size
        return data

    def _recv_into(self, target: memoryview, idle_check) -> int:
        while True:
            begun = self._in_message or self._end > self._start
            if begun and time.monotonic() - self._message_started > MESSAGE_TIMEOUT_S:
                raise StreamClosed("a message did not arrive whole within %.0f s" % MESSAGE_TIMEOUT_S)
            got = -1
            if self._spin_worth and self.spin_s > 0.0 and not begun:
                got = self._spin(target)
                self._spin_worth = got >= 0
            if got < 0:
                try:
                    got = self.sock.recv_into(target)
                except (BlockingIOError, socket.timeout):  # SO_RCVTIMEO passed with nothing received
                    got = -1
            if got > 0:
                if not self._in_message:
                    self._in_message = True
                    self._message_started = time.monotonic()
                    if self.spin_s > 0.0:
                        self._spin_worth = _perf_counter() - self._wait_started <= self.spin_s
                return got
            if got == 0:
                raise StreamClosed("the connection closed%s" % (" in the middle of a message" if begun else ""),
                                   clean=not begun)
            if not begun and idle_check is not None:
                idle_check()

    def _spin(self, target: memoryview) -> int:
        """What a non-blocking recv gets within ``spin_s``; -1 if nothing came."""
        recv_into = self.sock.recv_into
        end = _perf_counter() + self.spin_s
        while True:
            try:
                return recv_into(target, 0, socket.MSG_DONTWAIT)
            except BlockingIOError:
                if _perf_counter() >= end:
                    return -1
                _yield()
