"""Log records on stderr in the form journald wants when systemd runs us, plain timestamps otherwise.

Under systemd (``$JOURNAL_STREAM`` or ``$INVOCATION_ID`` set) each line starts with ``<N>``, the
syslog priority journald parses into the record's level, and carries no timestamp: the journal adds
its own. Elsewhere lines get a timestamp and the level name.
"""
import logging
import os
import sys
from typing import Mapping, Optional

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
# logging level -> syslog priority (sd-daemon(3)): debug 7, info 6, warning 4, error 3, critical 2.
_PRIORITY = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))


def syslog_priority(levelno: int) -> int:
    for threshold, priority in _PRIORITY:
        if levelno >= threshold:
            return priority
    return 7


def under_systemd(environ: Optional[Mapping[str, str]] = None) -> bool:
    env = os.environ if environ is None else environ
    return bool(env.get("JOURNAL_STREAM") or env.get("INVOCATION_ID"))


class JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = "%s: %s" % (record.name, record.getMessage())
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        prefix = "<%d>" % syslog_priority(record.levelno)
        # journald reads one record per line: every continuation line keeps the priority.
        return "\n".join(prefix + line for line in text.splitlines() or [""])


def configure_logging(level: str, environ: Optional[Mapping[str, str]] = None) -> None:
    """Replace the root handlers with one stderr handler in the right form, at ``level``."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    if under_systemd(environ):
        handler.setFormatter(JournalFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(LEVELS[level])
