"""The peer's waiting room, shared fairly between devices.

Each device (its CurveZMQ key when the link is secure, else its connection) has its own FIFO; the
peer serves the devices round-robin, one request each in turn, so a device that floods waits behind
its own requests, not in front of the others'. Admission is fair too: while there is room any
request gets in; when the room is full, a device holding less than its share (``capacity`` split
evenly between the devices waiting, the newcomer counted) pushes out the newest request of the
device holding the most, and that request is answered ``overloaded``. A device already at its share
is refused. So N devices can always get ``capacity // N`` requests each waiting, whatever the others
send.
"""
import collections
from typing import Any, Deque, Dict, Hashable, List, Optional, Tuple


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
    def devices(self) -> int:
        return len(self._queues)

    def offer(self, key: Hashable, item: Any, nbytes: int) -> Tuple[bool, List[Any]]:
        """Queue ``item`` for ``key`` if its share allows; returns (admitted, items pushed out to make room)."""
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
        """The oldest request of the next device in turn, or None when nothing waits."""
        if not self._queues:
            return None
        key, queue = next(iter(self._queues.items()))
        item, nbytes = queue.popleft()
        if queue:
            self._queues.move_to_end(key)
        else:
            del self._queues[key]
        self.length -= 1
        self.nbytes -= nbytes
        return item

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
