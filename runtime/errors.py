"""Errors a user can act on.

Every error the runtime raises on bad input derives from ``EdgesplitError``; the CLI prints its
message and exits non-zero instead of a traceback.
"""


class EdgesplitError(Exception):
    """Base class: the message says what failed, where, and what to do."""


class BundleError(EdgesplitError):
    """A bundle is malformed, incomplete or corrupted."""


class InputError(EdgesplitError):
    """A tensor handed to the runtime has the wrong shape or dtype."""


class BackendError(EdgesplitError):
    """A segment backend is missing or cannot load a segment."""
