"""Durable traces: every task and every controller transition, in an embedded SQLite database.

``TraceStore`` writes (WAL, batched commits, size cap); ``export``/``summarize`` read, for the
``edgesplit traces`` command and for off-board training. The schema is in ``schema.py``.
"""
from edgesplit.runtime.traces.errors import TraceError
from edgesplit.runtime.traces.export import FORMATS, export, open_readonly, summarize, tasks_arrays, transitions_arrays
from edgesplit.runtime.traces.records import TaskRecord, TransitionRecord
from edgesplit.runtime.traces.schema import SCHEMA_VERSION
from edgesplit.runtime.traces.store import TraceStore, default_versions

__all__ = ["FORMATS", "SCHEMA_VERSION", "TaskRecord", "TraceError", "TraceStore", "TransitionRecord",
           "default_versions", "export", "open_readonly", "summarize", "tasks_arrays", "transitions_arrays"]
