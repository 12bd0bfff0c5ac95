"""A software link: a TCP relay that replays a bandwidth recording, no root needed.

Put it between a device and a peer (the device connects to the relay, the relay to the peer).
Each direction is one shared link for all connections: bytes pass a token bucket whose rate
follows the recording step by step (optionally replayed faster with ``time_scale``), then wait half
the base RTT before they are written on. A bounded queue in front of the bucket plays the part of
a router buffer, so a sender sees back-pressure, not unbounded buffering.

The bucket may go into debt by one chunk and then waits for it to be paid back at the current
rate; the debt is re-evaluated at every recording step, so a rate change takes effect within a step.
A chunk is written on only once its debt is paid, i.e. after its serialisation time at the recording's
rate. The bucket saves up at most ``burst_bytes`` while the link is idle; the default, 0, is a
bottleneck that serialises every byte (a 3 KB message at 0.4 Mbit/s takes 60 ms, not less because
the link was idle before). A burst of one MTU (1500) or more lets that much through at once, as
``tc tbf`` does; with bursts larger than the messages, small transfers would look faster than the
link and a passive bandwidth estimate would read high.
"""
import asyncio
import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional, Set, Tuple

from edgesplit.runtime.emulation.link.recording_readers import BandwidthRecording

log = logging.getLogger(__name__)

CHUNK_BYTES = 16 * 1024
DEFAULT_BURST_BYTES = 0  # serialise every byte (see the module docstring)
Clock = Callable[[], float]


class RateSchedule:
    """The recording's rate at a given time since ``start``, with a time scale (2.0 = twice as fast)."""

    def __init__(self, recording: BandwidthRecording, time_scale: float = 1.0, start: float = 0.0):
        if not time_scale > 0:
            raise ValueError("time_scale must be positive, got %r" % time_scale)
        self.recording = recording
        self.time_scale = time_scale
        self.start = start
        self.step_wall_s = recording.step_s / time_scale

    def step_index(self, now: float) -> int:
        return int(math.floor((now - self.start) / self.step_wall_s))

    def rate_bps(self, now: float) -> float:
        return float(self.recording.bps[self.step_index(now) % len(self.recording.bps)])

    def next_change(self, now: float) -> float:
        """The first step boundary strictly after ``now`` (rounding can put the computed one on ``now``)."""
        index = self.step_index(now) + 1
        change = self.start + index * self.step_wall_s
        return change if change > now else self.start + (index + 1) * self.step_wall_s

    def capacity_bytes(self, t0: float, t1: float) -> float:
        """Bytes the link can carry between ``t0`` and ``t1`` (exact across step boundaries).

        Walks step indices, not times: with a step that binary floating point cannot represent
        (time scale 3 gives 1/3 s), the boundary computed for a time can round back onto that very
        time, and a loop over times would then never advance.
        """
        total, t = 0.0, t0
        index = self.step_index(t0)
        while t < t1:
            end = min(t1, self.start + (index + 1) * self.step_wall_s)
            if end > t:
                total += float(self.recording.bps[index % len(self.recording.bps)]) / 8.0 * (end - t)
                t = end
            index += 1
        return total


class TokenBucket:
    """Bytes allowed by a RateSchedule, with at most ``burst_bytes`` saved up while idle."""

    def __init__(self, schedule: RateSchedule, burst_bytes: int = DEFAULT_BURST_BYTES, clock: Clock = time.monotonic):
        if burst_bytes < 0:
            raise ValueError("burst_bytes must be >= 0, got %r" % burst_bytes)
        self.schedule = schedule
        self.burst_bytes = burst_bytes
        self.clock = clock
        self._tokens = float(burst_bytes)
        self._last = clock()

    def _refill(self, now: float) -> None:
        if now > self._last:
            self._tokens = min(float(self.burst_bytes), self._tokens + self.schedule.capacity_bytes(self._last, now))
            self._last = now

    def wait_s(self, nbytes: int) -> float:
        """Take ``nbytes`` now (possibly into debt); seconds to wait until the debt is paid (estimate)."""
        now = self.clock()
        self._refill(now)
        self._tokens -= nbytes
        return self.debt_wait_s(now)

    def debt_wait_s(self, now: float) -> float:
        self._refill(now)
        if self._tokens >= 0.0:
            return 0.0
        rate = self.schedule.rate_bps(now) / 8.0
        until_change = self.schedule.next_change(now) - now
        if rate <= 0.0:
            return until_change  # an outage: look again at the next step
        return min(-self._tokens / rate, until_change)


@dataclass
class LinkStats:
    connections: int = 0
    bytes_up: int = 0
    bytes_down: int = 0


class SoftwareLink:
    """Relay ``listen`` -> ``target`` (host, port pairs) shaped by ``recording``; run with ``serve()``."""

    def __init__(self, listen: Tuple[str, int], target: Tuple[str, int], recording: BandwidthRecording,
                 rtt_s: float = 0.020, time_scale: float = 1.0, queue_bytes: int = 256 * 1024,
                 clock: Clock = time.monotonic, burst_bytes: int = DEFAULT_BURST_BYTES):
        self.listen = listen
        self.target = target
        self.rtt_s = rtt_s
        self.queue_chunks = max(2, queue_bytes // CHUNK_BYTES)
        self.clock = clock
        self.schedule = RateSchedule(recording, time_scale, start=clock())
        self.burst_bytes = burst_bytes
        self.up = TokenBucket(self.schedule, burst_bytes, clock=clock)
        self.down = TokenBucket(self.schedule, burst_bytes, clock=clock)
        self.stats = LinkStats()
        self.port = 0
        self._server = None  # type: Optional[asyncio.AbstractServer]
        self._connections = set()  # type: Set[asyncio.Task]

    def rate_bps(self) -> float:
        return self.schedule.rate_bps(self.clock())

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, self.listen[0], self.listen[1])
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("link listening on %s:%d -> %s:%d, recording %s, base RTT %.1f ms, time scale %.2f, burst %d B",
                 self.listen[0], self.port, self.target[0], self.target[1], self.schedule.recording.source,
                 self.rtt_s * 1e3, self.schedule.time_scale, self.burst_bytes)
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    async def _accept(self, device_reader, device_writer) -> None:
        try:
            peer_reader, peer_writer = await asyncio.open_connection(*self.target)
        except OSError as exc:
            log.warning("link: cannot reach %s:%d: %s", self.target[0], self.target[1], exc)
            device_writer.close()
            return
        self.stats.connections += 1
        task = asyncio.current_task()
        self._connections.add(task)
        try:
            await asyncio.gather(self._direction(device_reader, peer_writer, self.up, "up"),
                                 self._direction(peer_reader, device_writer, self.down, "down"))
        except asyncio.CancelledError:
            # close() ends connections this way; finishing quietly keeps asyncio's stream callback calm.
            for writer in (device_writer, peer_writer):
                writer.close()
        finally:
            self._connections.discard(task)

    async def _direction(self, reader, writer, bucket: TokenBucket, name: str) -> None:
        shaped = asyncio.Queue(maxsize=self.queue_chunks)  # the bottleneck's buffer
        in_flight = asyncio.Queue()  # serialised, propagating for rtt/2

        async def receive() -> None:
            try:
                while True:
                    data = await reader.read(CHUNK_BYTES)
                    if not data:
                        break
                    await shaped.put(data)
            except (ConnectionError, OSError):
                pass
            await shaped.put(None)

        async def serialise() -> None:
            while True:
                data = await shaped.get()
                if data is None:
                    await in_flight.put(None)
                    return
                wait = bucket.wait_s(len(data))
                while wait > 0.0:
                    await asyncio.sleep(wait)
                    wait = bucket.debt_wait_s(self.clock())
                await in_flight.put((self.clock() + self.rtt_s / 2.0, data))

        async def deliver() -> None:
            try:
                while True:
                    item = await in_flight.get()
                    if item is None:
                        break
                    due, data = item
                    delay = due - self.clock()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    writer.write(data)
                    await writer.drain()
                    if name == "up":
                        self.stats.bytes_up += len(data)
                    else:
                        self.stats.bytes_down += len(data)
                if writer.can_write_eof():
                    writer.write_eof()
            except (ConnectionError, OSError):
                pass
            finally:
                writer.close()

        await asyncio.gather(receive(), serialise(), deliver())


class BackgroundLink:
    """A SoftwareLink on its own event-loop thread: ``with BackgroundLink(...) as link: link.port``."""

    def __init__(self, target: Tuple[str, int], recording: BandwidthRecording, rtt_s: float = 0.020,
                 time_scale: float = 1.0, listen: Tuple[str, int] = ("127.0.0.1", 0),
                 burst_bytes: int = DEFAULT_BURST_BYTES):
        self.link = SoftwareLink(listen, target, recording, rtt_s, time_scale, burst_bytes=burst_bytes)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="edgesplit-link", daemon=True)
        self._thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self.link.start(), self._loop).result(10)

    @property
    def endpoint(self) -> str:
        return "tcp://%s:%d" % (self.link.listen[0], self.port)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.link.close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> "BackgroundLink":
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def parse_tcp_endpoint(text: str, what: str) -> Tuple[str, int]:
    """``tcp://HOST:PORT`` (or ``HOST:PORT``) -> (host, port); raises ValueError naming ``what``."""
    rest = text[len("tcp://"):] if text.startswith("tcp://") else text
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("%s must look like tcp://HOST:PORT, got %r" % (what, text))
    return host.strip("[]"), int(port)
