"""One kept-alive HTTP/1.1 client connection, for the mount's S3 client.

http.client parses every answer's headers with the email package, which was the larger part
of the mount's CPU time per small request (a lookup's listing, an open's GET); this reads the
status line and headers itself. A request is written with one send (its body too, when it is
bytes); a body that is a file region is streamed in blocks. Answers are read whole, with a
Content-Length, chunked, or up to the close; or, for a ``sink`` that takes it, a body with a
Content-Length is handed over in pieces as they arrive (never held whole)."""

from __future__ import annotations

import io
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, cast

__all__ = ["Connection", "Answer", "ProtocolError", "Sink"]

_MAX_LINE = 65536
_MAX_HEADERS = 200


class ProtocolError(OSError):
    """The server closed the connection or answered something that is not HTTP/1.x."""


# Called with an answer's status and headers before its body: a consumer of the body's pieces
# (in order, as they arrive), or None to have the body read whole into the Answer. A piece is
# a view of one buffer, used again for the next: the consumer copies what it keeps.
Sink = Callable[[int, dict[str, str]], Callable[[memoryview], None] | None]


class Readable(Protocol):
    length: int

    def readinto(self, buffer: memoryview) -> int: ...


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # names in lower case; repeated headers joined with ", "
    body: bytes
    will_close: bool


class Connection:
    def __init__(self, host: str, port: int, timeout_s: float, context: ssl.SSLContext | None = None,
                 block: int = 256 * 1024) -> None:
        sock = socket.create_connection((host, port), timeout_s)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if context is not None:
            sock = context.wrap_socket(sock, server_hostname=host)
        self._sock = sock
        self._reader = cast(io.BufferedReader, sock.makefile("rb", buffering=64 * 1024))
        self._block = block

    def close(self) -> None:
        self._reader.close()
        self._sock.close()

    def exchange(self, method: str, target: str, headers: dict[str, str], body: bytes | Readable | None,
                 sink: Sink | None = None) -> Answer:
        """Send one request and read its whole answer (its body to ``sink``, if it takes it)."""
        head = "".join([f"{method} {target} HTTP/1.1\r\n", *(f"{k}: {v}\r\n" for k, v in headers.items()), "\r\n"])
        data = head.encode("latin-1")
        if isinstance(body, bytes | bytearray):
            self._sock.sendall(data + body)
        else:
            self._sock.sendall(data)
            if body is not None:
                buffer = memoryview(bytearray(min(self._block, max(body.length, 1))))
                while got := body.readinto(buffer):
                    self._sock.sendall(buffer[:got])
        return self._answer(method, sink)

    def _line(self) -> bytes:
        line = self._reader.readline(_MAX_LINE + 1)
        if len(line) > _MAX_LINE:
            raise ProtocolError("an answer line is too long")
        return line

    def _answer(self, method: str, sink: Sink | None = None) -> Answer:
        line = self._line()
        if not line:
            raise ProtocolError("the server closed the connection")
        version, _, rest = line.decode("latin-1").partition(" ")
        code = rest[:3]
        if not version.startswith("HTTP/1.") or not code.isdigit():
            raise ProtocolError(f"not an HTTP/1.x answer: {line[:80]!r}")
        status = int(code)
        headers: dict[str, str] = {}
        for _ in range(_MAX_HEADERS):
            raw = self._line()
            if raw in (b"\r\n", b"\n", b""):
                break
            name, _, value = raw.decode("latin-1").partition(":")
            name, value = name.strip().lower(), value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        else:
            raise ProtocolError("too many headers in an answer")
        if 100 <= status < 200:  # (we send no Expect: an interim answer is skipped)
            return self._answer(method, sink)
        connection = headers.get("connection", "").lower()
        will_close = connection == "close" or (version == "HTTP/1.0" and connection != "keep-alive")
        if method == "HEAD" or status in (204, 304):
            return Answer(status, headers, b"", will_close)
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return Answer(status, headers, self._chunked(), will_close)
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                raise ProtocolError(f"bad Content-Length {length!r}")
            consumer = sink(status, headers) if sink is not None else None
            if consumer is not None:
                self._stream(int(length), consumer)
                return Answer(status, headers, b"", will_close)
            body = self._reader.read(int(length))
            if len(body) != int(length):
                raise ProtocolError("the server closed the connection inside an answer")
            return Answer(status, headers, body, will_close)
        return Answer(status, headers, self._reader.read(), True)  # up to the close

    def _stream(self, length: int, consumer: Callable[[memoryview], None]) -> None:
        """``length`` bytes of body to ``consumer``, each piece as soon as it has arrived, read
        into one buffer (a new bytes object per piece kept glibc's heaps growing: the mount's
        peak RSS was 6 to 8 MiB higher)."""
        buffer = memoryview(bytearray(min(length, self._block)))
        left = length
        while left > 0:
            got = self._reader.readinto1(buffer[:min(left, len(buffer))])
            if not got:
                raise ProtocolError("the server closed the connection inside an answer")
            left -= got
            consumer(buffer[:got])

    def _chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size_line = self._line().split(b";", 1)[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                raise ProtocolError(f"bad chunk size {size_line[:20]!r}") from None
            if size == 0:
                while self._line() not in (b"\r\n", b"\n", b""):  # trailers
                    pass
                return b"".join(parts)
            chunk = self._reader.read(size)
            if len(chunk) != size:
                raise ProtocolError("the server closed the connection inside a chunk")
            parts.append(chunk)
            self._line()  # the CRLF after the chunk
