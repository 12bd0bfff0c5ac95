"""sd_notify messages are KEY=VALUE lines: a status text (a file name, a policy's error) never adds a line."""
import socket

from edgesplit.runtime.daemon.sd_notify import SystemdNotifier


def test_a_status_with_newlines_stays_one_assignment(tmp_path):
    path = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(path)
    listener.settimeout(5.0)
    notifier = SystemdNotifier(path)
    hostile = "policy reload refused: unknown meta key 'x\nWATCHDOG=trigger\r\nMAINPID=1'"
    try:
        for send in (notifier.ready, notifier.stopping, notifier.status):
            assert send(hostile)
            lines = listener.recv(4096).decode().split("\n")
            assert [line.split("=", 1)[0] for line in lines] in (["READY", "STATUS"], ["STOPPING", "STATUS"],
                                                                 ["STATUS"]), lines
            assert "WATCHDOG=trigger" in lines[-1] and lines[-1].startswith("STATUS=")  # kept, as text
    finally:
        notifier.close()
        listener.close()
