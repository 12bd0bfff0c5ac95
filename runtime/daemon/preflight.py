"""What the machine must provide for a valid config to start: folders, permissions, the API group, key files.

``load_daemon_config`` checks the file on its own; these checks look at the machine (does the trace
database's folder exist and can this user write there, does ``api.group`` exist and may this user
give the socket to it). ``serve --check-config`` and ``serve`` run the same checks, so a config that
passes the check does not then fail at start-up for one of these reasons. Each problem names the
file, line and key, and what to do.
"""
import grp
import os
from typing import List

from edgesplit.runtime.daemon.config import DaemonConfig, DaemonConfigError, key_location

LOCAL_HINT = "to try the daemon as yourself with every path in one folder: edgesplit serve --local DIR"


def machine_problems(config: DaemonConfig) -> List[str]:
    """Every reason ``serve`` would refuse this (already validated) config on this machine."""
    problems = []  # type: List[str]

    def problem(table: str, key: str, message: str) -> None:
        problems.append("%s: %s" % (key_location(config, table, key), message))

    trouble = _writable_folder(os.path.dirname(config.traces.path) or ".", create=False)
    if trouble:
        problem("traces", "path", "%s: cannot keep the trace database there: %s (the systemd unit's "
                "StateDirectory creates /var/lib/edgesplit; %s)" % (config.traces.path, trouble, LOCAL_HINT))
    trouble = _writable_folder(os.path.dirname(config.api.socket) or ".", create=True)
    if trouble:
        problem("api", "socket", "%s: cannot open the API socket there: %s (the systemd unit's "
                "RuntimeDirectory creates /run/edgesplit; %s)" % (config.api.socket, trouble, LOCAL_HINT))
    if config.metrics.path:
        trouble = _writable_folder(os.path.dirname(config.metrics.path) or ".", create=False)
        if trouble:
            problem("metrics", "path", "%s: cannot write the metrics file there: %s" % (config.metrics.path, trouble))
    if config.model.selector and config.linucb.state:
        trouble = _writable_folder(os.path.dirname(config.linucb.state) or ".", create=False)
        if trouble:
            problem("linucb", "state", "%s: cannot keep the variant selector's learner state there: %s (set state = "
                    "\"\" to learn afresh on every start)" % (config.linucb.state, trouble))
    if config.api.group:
        trouble = _group_problem(config.api.group)
        if trouble:
            problem("api", "group", "%s (%s, or set group = \"\" to keep the daemon's own group)" % (trouble, LOCAL_HINT))
    if config.peer.address and config.peer.server_key:
        for key, need_secret in (("server_key", False), ("device_key", True)):
            trouble = _key_problem(getattr(config.peer, key), need_secret)
            if trouble:
                problem("peer", key, trouble)
    return problems


def _key_problem(path: str, need_secret: bool) -> str:
    """'' when the CurveZMQ key file reads as the secure link needs it (a secret one owner-only); else why not."""
    from edgesplit.runtime.security.keys import KeyFileError, load_keys

    try:
        load_keys(path, need_secret=need_secret)
    except KeyFileError as exc:
        return str(exc)
    return ""


def check_machine(config: DaemonConfig) -> None:
    """Raise DaemonConfigError listing every problem ``machine_problems`` finds."""
    problems = machine_problems(config)
    if problems:
        raise DaemonConfigError("\n".join(problems))


def _writable_folder(folder: str, create: bool) -> str:
    """'' when this user can create files in ``folder`` (or, with ``create``, create it); else why not."""
    if os.path.isdir(folder):
        if not os.access(folder, os.W_OK | os.X_OK):
            return "folder %s is not writable by this user (uid %d)" % (folder, os.getuid())
        return ""
    if os.path.exists(folder):
        return "%s is not a folder" % folder
    if not create:
        return "folder %s does not exist" % folder
    parent = folder
    while parent and not os.path.isdir(parent):
        parent = os.path.dirname(parent.rstrip("/"))
    if not parent or not os.access(parent, os.W_OK | os.X_OK):
        return "folder %s does not exist and this user (uid %d) cannot create it in %s" % (
            folder, os.getuid(), parent or "/")
    return ""


def _group_problem(name: str) -> str:
    try:
        gid = grp.getgrnam(name).gr_gid
    except KeyError:
        return "group %r does not exist (systemd/install.sh creates it)" % name
    if os.getuid() != 0 and gid != os.getgid() and gid not in os.getgroups():
        return "this user (uid %d) is not a member of group %r, so cannot give it the API socket" % (os.getuid(), name)
    return ""
