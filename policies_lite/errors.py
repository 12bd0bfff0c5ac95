"""The one error a policy raises on bad input.

``policies_lite`` imports nothing from ``runtime`` (the arrow points the other way), so its error is
its own class; the runtime turns it into an ``EdgesplitError`` where a user sees it.
"""


class PolicyError(Exception):
    """A policy file or its input is unusable; the message names the file, field or feature."""
