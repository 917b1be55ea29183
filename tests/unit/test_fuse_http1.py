"""The mount's HTTP/1.1 connection against a server answering crafted bytes: bodies framed by
Content-Length, chunked (with trailers) or by the close; HEAD answers without a body; two
requests on one kept-alive connection; a connection the server closed is an OSError (which
the S3 client retries on a new one)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest
from edgestore.fuse.http1 import Connection, ProtocolError


class Scripted:
    """A one-connection server: for each request it reads (up to the blank line and any
    Content-Length body), it sends the next scripted answer; None closes the connection."""

    def __init__(self, answers: list[bytes | None]) -> None:
        self.answers = answers
        self.requests: list[bytes] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        reader = conn.makefile("rb")
        with conn, reader:
            for answer in self.answers:
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    line = reader.readline()
                    if not line:
                        return
                    head += line
                length = next((int(h.split(b":")[1]) for h in head.split(b"\r\n")
                               if h.lower().startswith(b"content-length:")), 0)
                self.requests.append(head + reader.read(length))
                if answer is None:
                    return
                conn.sendall(answer)


@pytest.fixture
def serve() -> Iterator[Callable[[list[bytes | None]], Scripted]]:
    made: list[Scripted] = []

    def start(answers: list[bytes | None]) -> Scripted:
        made.append(Scripted(answers))
        return made[-1]

    yield start
    for server in made:
        server.listener.close()


def test_answers_framed_every_way_on_one_kept_alive_connection(serve: Callable[[list[bytes | None]], Scripted]) -> None:
    server = serve([
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nETag: \"a\"\r\nX-Amz-Meta-Mode: 1\r\nX-Amz-Meta-Mode: 2\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n",  # a HEAD: the length, no body
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
    ])
    conn = Connection("127.0.0.1", server.port, 10)
    try:
        first = conn.exchange("GET", "/b/k", {"Host": "h"}, None)
        assert (first.status, first.body, first.headers["etag"]) == (200, b"hello", '"a"')
        assert first.headers["x-amz-meta-mode"] == "1, 2" and not first.will_close
        assert conn.exchange("GET", "/b?list-type=2", {"Host": "h"}, None).body == b"abcde"
        head = conn.exchange("HEAD", "/b/k", {"Host": "h"}, None)
        assert (head.status, head.headers["content-length"], head.body) == (200, "42", b"")
        assert conn.exchange("DELETE", "/b/k", {"Host": "h"}, None).status == 204
        put = conn.exchange("PUT", "/b/k", {"Host": "h", "Content-Length": "4"}, b"data")
        assert (put.status, put.body) == (201, b"ok")
    finally:
        conn.close()
    assert server.requests[0].startswith(b"GET /b/k HTTP/1.1\r\nHost: h\r\n")
    assert server.requests[4].endswith(b"\r\n\r\ndata")


def test_a_body_up_to_the_close_and_a_closed_connection(serve: Callable[[list[bytes | None]], Scripted]) -> None:
    server = serve([b"HTTP/1.0 200 OK\r\n\r\nuntil the end"])
    conn = Connection("127.0.0.1", server.port, 10)
    try:
        answer = conn.exchange("GET", "/b/k", {"Host": "h"}, None)
        assert (answer.body, answer.will_close) == (b"until the end", True)
    finally:
        conn.close()
    closing = serve([None])
    conn = Connection("127.0.0.1", closing.port, 10)
    try:
        with pytest.raises(ProtocolError):
            conn.exchange("GET", "/b/k", {"Host": "h"}, None)
    finally:
        conn.close()


def test_a_sink_takes_a_body_in_pieces_and_an_error_whole(serve: Callable[[list[bytes | None]], Scripted]) -> None:
    body = bytes(range(256)) * 2000  # 512000 bytes: more than one buffer of the connection's
    server = serve([
        b"HTTP/1.1 206 Partial Content\r\nContent-Length: %d\r\n\r\n" % len(body) + body,
        b"HTTP/1.1 503 Slow Down\r\nContent-Length: 7\r\n\r\n<Error>",
    ])
    conn = Connection("127.0.0.1", server.port, 10, block=64 * 1024)
    pieces: list[bytes] = []

    def sink(status: int, headers: dict[str, str]) -> Callable[[memoryview], None] | None:
        return (lambda piece: pieces.append(bytes(piece))) if status == 206 else None

    try:
        answer = conn.exchange("GET", "/b/k", {"Host": "h"}, None, sink)
        assert (answer.status, answer.body) == (206, b"")
        assert b"".join(pieces) == body and len(pieces) > 1 and max(map(len, pieces)) <= 64 * 1024
        error = conn.exchange("GET", "/b/k", {"Host": "h"}, None, sink)
        assert (error.status, error.body) == (503, b"<Error>")
    finally:
        conn.close()
