"""Reads a set of sensors on its own thread and hands out windowed averages.

Inference never waits on a sysfs read: the controller's calls only take a short lock around a deque
scan. History older than ``history_s`` is dropped. Unavailable readings are kept as the latest value
(so the reason is visible) but never enter an average.
"""
import collections
import logging
import threading
import time
from typing import Deque, Dict, List, Optional, Sequence, Tuple

from edgesplit.runtime.sensors.energy import integrate_energy_j
from edgesplit.runtime.sensors.reading import Clock, Reading, Sensor, unavailable

log = logging.getLogger(__name__)


class Sampler:
    def __init__(self, sensors: Sequence[Sensor], rate_hz: float, history_s: float = 60.0,
                 clock: Clock = time.monotonic) -> None:
        if rate_hz <= 0:
            raise ValueError("sampling rate must be positive, got %r Hz" % rate_hz)
        self.sensors = list(sensors)
        self.period_s = 1.0 / rate_hz
        self.history_s = history_s
        self.clock = clock
        self._lock = threading.Lock()
        self._history = {}  # type: Dict[str, Deque[Tuple[float, float]]]
        self._latest = {}  # type: Dict[str, Reading]
        self._stop = threading.Event()
        self._thread = None  # type: Optional[threading.Thread]
        self.rounds = 0

    # -- the sampling side ------------------------------------------------------------------------
    def sample_once(self) -> List[Reading]:
        """Reads every sensor once and records the result; the thread calls this at the set rate."""
        readings = []  # type: List[Reading]
        for sensor in self.sensors:
            try:
                readings.extend(sensor.read())
            except Exception as exc:  # a broken reader must not stop the others or the thread
                log.exception("sensor %s failed", sensor.kind)
                readings.extend(unavailable(name, unit, "reader crashed: %r" % exc, self.clock)
                                for name, unit in sensor.outputs.items())
        self._record(readings)
        return readings

    def _record(self, readings: Sequence[Reading]) -> None:
        with self._lock:
            for reading in readings:
                self._latest[reading.name] = reading
                if not reading.available or reading.value is None:
                    continue
                series = self._history.setdefault(reading.name, collections.deque())
                series.append((reading.timestamp, reading.value))
                horizon = reading.timestamp - self.history_s
                while series and series[0][0] < horizon:
                    series.popleft()
            self.rounds += 1

    def _run(self) -> None:
        next_due = self.clock()
        while not self._stop.is_set():
            self.sample_once()
            next_due += self.period_s
            delay = next_due - self.clock()
            if delay < 0:  # the sensors are slower than the rate: skip ahead instead of bursting
                next_due = self.clock()
                delay = 0.0
            self._stop.wait(delay)

    def start(self) -> "Sampler":
        if self._thread is not None:
            raise RuntimeError("sampler already started")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="edgesplit-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> "Sampler":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- the controller side ----------------------------------------------------------------------
    def latest(self, name: str) -> Optional[Reading]:
        with self._lock:
            return self._latest.get(name)

    def names(self) -> List[str]:
        with self._lock:
            return sorted(self._latest)

    def window_mean(self, name: str, window_s: float, now: Optional[float] = None) -> Optional[float]:
        """Mean of the available values of ``name`` from the last ``window_s`` seconds, or None."""
        now = self.clock() if now is None else now
        cutoff = now - window_s
        total, count = 0.0, 0
        with self._lock:
            for t, value in reversed(self._history.get(name, ())):
                if t < cutoff:
                    break
                if t <= now:
                    total += value
                    count += 1
        return total / count if count else None

    def window_means(self, window_s: float, now: Optional[float] = None) -> Dict[str, Optional[float]]:
        now = self.clock() if now is None else now
        return {name: self.window_mean(name, window_s, now) for name in self.names()}

    def series(self, name: str, start: float, end: float) -> List[Tuple[float, float]]:
        with self._lock:
            return [(t, v) for t, v in self._history.get(name, ()) if start <= t <= end]

    def energy_j(self, power_name: str, start: float, end: float) -> Optional[float]:
        """Energy between two sampler-clock times from the power samples around them."""
        margin = 2 * self.period_s
        return integrate_energy_j(self.series(power_name, start - margin, end + margin), start, end)
