"""The trace store's user-facing error (an EdgesplitError, so the CLI prints it as one line)."""
from edgesplit.runtime.errors import EdgesplitError


class TraceError(EdgesplitError):
    """A trace database is missing, foreign, from another schema version, or a record is malformed."""
