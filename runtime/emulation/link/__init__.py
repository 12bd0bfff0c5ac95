"""Link emulation: bandwidth recordings (recorded link capacity over time, ``recordings/``) and a software
link that replays one between a device and its peer (no root needed). Not to be confused with the task
traces (``edgesplit.runtime.traces``, SQLite), nor with the live bandwidth estimate (``transport``)."""
