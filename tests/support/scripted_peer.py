"""ROUTER sockets in a thread that answer the device's requests on a script (a peer that misbehaves on cue)."""
import threading
import time

import zmq

from edgesplit.runtime.transport import wire


class _RouterThread:
    """The socket's life: bind to a random loopback port, read requests until ``stop()``."""

    def __init__(self):
        self.requests = []
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, daemon=True)
        self._thread.start()
        self._ready.wait(5)

    def _main(self):
        sock = zmq.Context.instance().socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        self.port = sock.bind_to_random_port("tcp://127.0.0.1")
        self._ready.set()
        while not self._stop.is_set():
            self._tick(sock)
            if not sock.poll(self.poll_ms):
                continue
            frames = sock.recv_multipart(copy=False)
            request = wire.decode_request(frames[1:])
            self.requests.append(request)
            self._answer(sock, frames[0], request)
        sock.close(linger=0)

    poll_ms = 20

    def _tick(self, sock):
        pass

    def _answer(self, sock, identity, request):
        raise NotImplementedError

    @property
    def endpoint(self):
        return "tcp://127.0.0.1:%d" % self.port

    def stop(self):
        self._stop.set()
        self._thread.join(5)


class ScriptedPeer(_RouterThread):
    """``script(request)`` returns a list of (delay_s, frames) sent back in turn (the delays hold up the socket)."""

    def __init__(self, script):
        self.script = script
        super().__init__()

    def _answer(self, sock, identity, request):
        for delay, reply in self.script(request):
            time.sleep(delay)
            sock.send_multipart([identity] + reply, copy=False)


class TimedPeer(_RouterThread):
    """``answer_after(request, now)`` -> seconds until an ``ok`` answer (None: never), without holding up the
    others; ``reply(request)`` builds it. ``log``: (arrival time, kind, connection identity) per request."""

    poll_ms = 2

    def __init__(self, answer_after, reply):
        self.answer_after = answer_after
        self.reply = reply
        self.log = []
        self._due = []
        super().__init__()

    def _tick(self, sock):
        now = time.monotonic()
        for item in [d for d in self._due if d[0] <= now]:
            self._due.remove(item)
            sock.send_multipart(item[1], copy=False)

    def _answer(self, sock, identity, request):
        now = time.monotonic()
        self.log.append((now, request.kind, identity.bytes))
        after = self.answer_after(request, now)
        if after is not None:
            self._due.append((now + after, [identity] + self.reply(request)))

    def probes(self):
        return [(at, who) for at, kind, who in self.log if kind == "probe"]
