"""``serve --local DIR``: the daemon as an ordinary user, with every path under one folder.

The first time, DIR/edgesplit.toml is written with paths relative to it (the trace database, the
API socket, the metrics file) and the API socket left to the user's own group; later starts reuse
it, so edits stick. Everything else is the packaged defaults: the embedded bundle, the detected
board, no peer until ``[peer] address`` is set.
"""
import os

LOCAL_CONFIG = """# edgesplit daemon config for a local try-out, written by 'edgesplit serve --local'.
# Paths are relative to this file's folder. Every key: systemd/edgesplit.toml in the source tree,
# or docs/daemon.md.
log_level = "info"

[model]
bundle = ""                 # "" = the embedded MNIST bundle
board = "auto"              # detect this machine's board config
policy = ""

[peer]
address = ""                # e.g. "tcp://127.0.0.1:5555" after 'edgesplit peer default --bind tcp://127.0.0.1:5555'

[traces]
path = "traces.db"

[api]
socket = "api.sock"         # 'edgesplit status --config %(config)s' finds it
group = ""                  # the socket stays with your own group

[metrics]
path = "metrics.prom"
"""


def local_config(folder: str) -> str:
    """DIR/edgesplit.toml, written on first use; returns its path."""
    folder = os.path.abspath(folder)
    os.makedirs(folder, mode=0o770, exist_ok=True)
    path = os.path.join(folder, "edgesplit.toml")
    if not os.path.exists(path):
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(LOCAL_CONFIG % {"config": path})
        os.replace(tmp, path)
    return path
