
import pytest
from support.daemon_process import DaemonProcess  # noqa: E402


@pytest.fixture
def make_daemon(tmp_path):
    started = []

    def make(extra_toml: str = "", **kwargs) -> DaemonProcess:
        workdir = tmp_path / ("d%d" % len(started))
        workdir.mkdir()
        daemon = DaemonProcess(workdir, extra_toml, **kwargs)
        started.append(daemon)
        return daemon

    yield make
    for daemon in started:
        daemon.cleanup()
