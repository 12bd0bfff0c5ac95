"""A real systemd user manager for tests, started inside ``unshare -m`` with a tmpfs on /run/systemd.

``systemd --user`` refuses to start unless /run/systemd/system exists (the "booted with systemd"
check); a private mount namespace with a tmpfs there satisfies it without touching the host.
``systemctl --user`` then reaches the manager from outside through ``$XDG_RUNTIME_DIR/systemd/private``.
"""
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Dict, List, Optional

SYSTEMD = next((p for p in ("/lib/systemd/systemd", "/usr/lib/systemd/systemd") if os.path.exists(p)), None)


def unavailable_reason() -> Optional[str]:
    """Why a user manager cannot run here (None when it can)."""
    if SYSTEMD is None:
        return "no systemd binary at /lib/systemd/systemd or /usr/lib/systemd/systemd"
    for tool in ("unshare", "systemctl", "mount"):
        if shutil.which(tool) is None:
            return "%s is not installed" % tool
    if os.geteuid() != 0:
        return "unshare -m and mounting a tmpfs on /run/systemd need root"
    return None


class UserManager:
    def __init__(self, base: Path):
        self.base = base
        self.runtime_dir = base / "xdg"
        self.home = base / "home"
        self.unit_dir = self.home / ".config" / "systemd" / "user"
        self.log = base / "manager.log"
        self.process = None  # type: Optional[subprocess.Popen]

    @property
    def env(self) -> Dict[str, str]:
        env = dict(os.environ, XDG_RUNTIME_DIR=str(self.runtime_dir), HOME=str(self.home))
        env.pop("DBUS_SESSION_BUS_ADDRESS", None)
        return env

    def start(self, timeout_s: float = 15.0) -> None:
        self.runtime_dir.mkdir(mode=0o700, parents=True)
        self.unit_dir.mkdir(parents=True)
        script = ("mount -t tmpfs tmpfs /run/systemd && mkdir -p /run/systemd/system && exec %s --user" % SYSTEMD)
        with open(str(self.log), "wb") as log:
            self.process = subprocess.Popen(["unshare", "-m", "sh", "-c", script], env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("systemd --user exited with %s: %s" % (self.process.returncode, self.log.read_text()))
            # (is-system-running says "offline" from outside the namespace: ask the manager something instead.)
            if (self.runtime_dir / "systemd" / "private").exists() and \
                    self.systemctl("show-environment", check=False).returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError("systemd --user did not come up within %.0f s: %s" % (timeout_s, self.log.read_text()))

    def systemctl(self, *args: str, check: bool = True, timeout_s: float = 60.0) -> subprocess.CompletedProcess:
        return subprocess.run(["systemctl", "--user"] + list(args), env=self.env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, universal_newlines=True, check=check, timeout=timeout_s)

    def show(self, unit: str, *props: str) -> Dict[str, str]:
        out = self.systemctl("show", unit, *["-p" + p for p in props]).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def wait_for(self, unit: str, predicate, timeout_s: float, props: List[str]) -> Dict[str, str]:
        deadline = time.monotonic() + timeout_s
        while True:
            state = self.show(unit, *props)
            if predicate(state):
                return state
            if time.monotonic() > deadline:
                raise AssertionError("%s: condition not reached within %.0f s; last state %s" % (unit, timeout_s, state))
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # the manager stops its units, then exits
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
