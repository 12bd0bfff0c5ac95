"""The ZeroMQ endpoints users type: ``tcp://HOST:PORT``, ``HOST:PORT`` (taken as TCP) or ``ipc://PATH``.

Checked before a socket sees them, so a typo is one line naming the option rather than a ZMQError
traceback from ``connect``/``bind``.
"""
from typing import List, Optional

from edgesplit.runtime.errors import InputError

SCHEMES = ("tcp://", "ipc://")


def endpoint_problem(text: str, bind: bool = False) -> Optional[str]:
    """Why ``text`` is not a usable endpoint, or None. ``bind`` allows ZeroMQ's wildcard port ``*``."""
    if text.startswith("ipc://"):
        return None if len(text) > len("ipc://") else "ipc:// needs a socket path"
    if not text.startswith("tcp://"):
        return "must be tcp://HOST:PORT (or ipc://PATH)"
    host, sep, port = text[len("tcp://"):].rpartition(":")
    if not sep or not host:
        return "must be tcp://HOST:PORT: the host or the port is missing"
    if port == "*" and bind:
        return None
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        return "the port must be a number in 1..65535%s, got %r" % (" or *" if bind else "", port)
    return None


def zmq_endpoint(text: str, option: str, bind: bool = False) -> str:
    """``text`` as a ZeroMQ endpoint, ``HOST:PORT`` becoming ``tcp://HOST:PORT``; InputError naming ``option``."""
    endpoint = text if "://" in text else "tcp://" + text
    problem = endpoint_problem(endpoint, bind)
    if problem:
        raise InputError("%s %s: %s (e.g. tcp://127.0.0.1:5555)" % (option, text, problem))
    return endpoint


def peer_endpoints(text: str, option: str) -> List[str]:
    """An ordered, comma-separated list of peer endpoints (front ends of one pool, most preferred first).

    One address is a list of one. InputError names ``option`` and the entry at fault."""
    endpoints = []  # type: List[str]
    for index, item in enumerate(text.split(",")):
        item = item.strip()
        if not item:
            raise InputError("%s %s: entry %d is empty (give tcp://HOST:PORT entries separated by commas)"
                             % (option, text, index + 1))
        endpoint = zmq_endpoint(item, option)
        if endpoint in endpoints:
            raise InputError("%s %s: %s is listed twice" % (option, text, endpoint))
        endpoints.append(endpoint)
    return endpoints
