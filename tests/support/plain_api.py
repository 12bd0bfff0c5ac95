"""A raw connection to the daemon's plain API endpoint (``api.sock.plain``) for tests that send what
``ApiClient`` never would: half messages, garbage, absurd lengths, pipelined floods.

Part of tests/support. Messages are built here with ``struct`` from the documented layout (u32 frame
count, u64 length per frame, the frames), not with the runtime's own encoder.
"""
import json
import socket
import struct
from typing import Any, Dict, List, Optional, Sequence

HELLO = b"ESAPI1\r\n"


def message(frames: Sequence[bytes]) -> bytes:
    return struct.pack("<I", len(frames)) + b"".join(struct.pack("<Q", len(f)) for f in frames) + b"".join(frames)


def request(op: str, request_id: int, tensors: Optional[Dict[str, Any]] = None, **fields: Any) -> bytes:
    """One API request; ``tensors``: name -> numpy array."""
    tensors = tensors or {}
    header = dict(fields, v=1, op=op, id=request_id,
                  tensors=[{"name": n, "dtype": str(a.dtype), "shape": list(a.shape)} for n, a in tensors.items()])
    return message([json.dumps(header).encode("utf-8")] + [a.tobytes() for a in tensors.values()])


class PlainConnection:
    def __init__(self, path: str, timeout_s: float = 10.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout_s)
        self.sock.connect(path)
        self.greeting = self._exact(len(HELLO))

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def answer(self) -> Dict[str, Any]:
        count = struct.unpack("<I", self._exact(4))[0]
        lengths = struct.unpack("<%dQ" % count, self._exact(8 * count))
        frames = [self._exact(n) for n in lengths]
        return json.loads(frames[0].decode("utf-8"))

    def answers(self, count: int) -> List[Dict[str, Any]]:
        return [self.answer() for _ in range(count)]

    def closed_by_daemon(self) -> bool:
        """True when the daemon closed this connection (EOF or reset) within the socket's timeout."""
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def close(self) -> None:
        self.sock.close()

    def _exact(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise ConnectionError("the daemon closed the connection after %d of %d bytes" % (len(data), size))
            data += chunk
        return data
