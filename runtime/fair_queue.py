"""A waiting room shared fairly between clients: the peer's devices, the daemon's API clients.

Each client (for the peer: its CurveZMQ key when the link is secure, else its connection; for the
daemon: its API connection) has its own FIFO, and the clients are served round-robin, one request
each in turn, so a client that floods waits behind its own requests, not in front of the others'.
Admission is fair too: while there is room any request gets in; when the room is full, a client
holding less than its share (``capacity`` split evenly between the clients waiting, the newcomer
counted) pushes out the newest request of the client holding the most, and that request is refused
(``overloaded`` on the peer, ``queue_full`` on the daemon). A client already at its share is refused.
So N clients can always get ``capacity // N`` requests each waiting, whatever the others send.
"""
import collections
import queue
import threading
from typing import Any, Callable, Deque, Dict, Hashable, List, Optional, Tuple


class FairQueue:
    """``offer(key, item, nbytes)`` -> (admitted, pushed-out items); ``pop()`` -> next item round-robin."""

    def __init__(self, capacity: int, capacity_bytes: int):
        self.capacity = capacity
        self.capacity_bytes = capacity_bytes
        self._queues = collections.OrderedDict()  # type: Dict[Hashable, Deque[Tuple[Any, int]]]
        self.length = 0
        self.nbytes = 0

    def __len__(self) -> int:
        return self.length

    @property
    def clients(self) -> int:
        return len(self._queues)

    def offer(self, key: Hashable, item: Any, nbytes: int) -> Tuple[bool, List[Any]]:
        """Queue ``item`` for ``key`` if its share allows; returns (admitted, items pushed out to make room)."""
        if self.length < self.capacity and self.nbytes + nbytes <= self.capacity_bytes:  # room: no share to weigh
            queue = self._queues.get(key)
            if queue is None:
                queue = self._queues[key] = collections.deque()
            queue.append((item, nbytes))
            self.length += 1
            self.nbytes += nbytes
            return True, []
        held = len(self._queues.get(key, ()))
        share = max(1, self.capacity // (len(self._queues) + (0 if held else 1)))
        pushed = []  # type: List[Any]
        while self.length + 1 > self.capacity or self.nbytes + nbytes > self.capacity_bytes:
            victim = self._longest(exclude=key)
            if held >= share or victim is None or len(self._queues[victim]) <= held + 1:
                self._restore(pushed)
                return False, []
            pushed.append((victim, self._take_newest(victim)))
        self._queues.setdefault(key, collections.deque()).append((item, nbytes))
        self.length += 1
        self.nbytes += nbytes
        return True, [item for _, (item, _) in pushed]

    def pop(self) -> Optional[Any]:
        """The oldest request of the next client in turn, or None when nothing waits."""
        if not self._queues:
            return None
        key, queue = next(iter(self._queues.items()))
        return self._take_oldest(key, queue)

    def _take_oldest(self, key: Hashable, queue) -> Any:
        """Remove and return ``key``'s oldest item; the client goes to the back of the turn, or leaves."""
        item, nbytes = queue.popleft()
        if queue:
            self._queues.move_to_end(key)
        else:
            del self._queues[key]
        self.length -= 1
        self.nbytes -= nbytes
        return item

    def take(self, accept: Callable[[Any], bool], limit: int) -> List[Any]:
        """Up to ``limit`` more items, each the oldest of its client, taken round-robin like ``pop`` while
        ``accept(item)`` says yes (the peer's batches: same cut, room left). A client whose oldest item is
        not accepted keeps its place and its order."""
        taken = []  # type: List[Any]
        progress = True
        while progress and len(taken) < limit:
            progress = False
            for key in list(self._queues):
                if len(taken) >= limit:
                    break
                queue = self._queues[key]
                if not accept(queue[0][0]):
                    continue
                taken.append(self._take_oldest(key, queue))
                progress = True
        return taken

    def _longest(self, exclude: Hashable) -> Optional[Hashable]:
        candidates = [k for k in self._queues if k != exclude]
        return max(candidates, key=lambda k: len(self._queues[k])) if candidates else None

    def _take_newest(self, key: Hashable) -> Tuple[Any, int]:
        queue = self._queues[key]
        entry = queue.pop()
        if not queue:
            del self._queues[key]
        self.length -= 1
        self.nbytes -= entry[1]
        return entry

    def _restore(self, pushed: List[Tuple[Hashable, Tuple[Any, int]]]) -> None:
        for key, entry in reversed(pushed):
            self._queues.setdefault(key, collections.deque()).append(entry)
            self.length += 1
            self.nbytes += entry[1]


class FairJobQueue:
    """The daemon's API queue: ``queue.Queue``'s ``put_nowait``/``get``/``qsize``/``maxsize``, fair per
    client (``job.identity``). ``put_nowait`` raises ``queue.Full`` when the client holds its share and
    returns the jobs pushed out to make room (they must be answered ``queue_full``)."""

    def __init__(self, maxsize: int):
        self.maxsize = maxsize
        self._fair = FairQueue(maxsize, 2 ** 62)
        self._ready = threading.Condition()
        self._in_service = 0  # jobs taken by get() and not yet task_done()

    def put_nowait(self, job: Any) -> List[Any]:
        with self._ready:
            admitted, pushed = self._fair.offer(job.identity, job, 0)
            if not admitted:
                raise queue.Full
            self._ready.notify()
            return pushed

    def get(self, timeout: Optional[float] = None) -> Any:
        with self._ready:
            if not self._ready.wait_for(lambda: len(self._fair) > 0, timeout):
                raise queue.Empty
            self._in_service += 1
            return self._fair.pop()

    def task_done(self) -> None:
        """The job from get() is answered."""
        with self._ready:
            self._in_service -= 1

    def idle(self) -> bool:
        """Nothing waits and nothing taken is still being served."""
        with self._ready:
            return len(self._fair) == 0 and self._in_service == 0

    def qsize(self) -> int:
        return len(self._fair)
