"""Hardware sensing on the board: GPU, power, CPU, temperature, memory, throttling.

Each sensor is a small reader whose ``read()`` returns timestamped ``Reading`` values, or readings
marked unavailable with the reason (never a made-up number). Every reader takes its filesystem root
from one ``SysRoot``, so tests point the same code at fake sysfs/procfs trees copied from real boards.
``Sampler`` reads a set of sensors on its own thread and hands out windowed averages.
"""
from edgesplit.runtime.sensors.reading import Reading, Sensor
from edgesplit.runtime.sensors.sysroot import SysRoot

__all__ = ["Reading", "Sensor", "SysRoot"]
