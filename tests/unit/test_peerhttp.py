"""The lean peer client (cluster/peerhttp.py) against a real aiohttp server: answers by
length and chunked, kept-alive connections reused, a connection the server closed while
idle replaced, and an unreachable peer reported as a connection failure."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any, AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from edgestore.cluster.peerhttp import PeerConnections, PeerHttpError
from edgestore.cluster.rpc import InternalClient
from edgestore.config import Timeouts
from edgestore.errors import PeerError


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


async def serving(handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
                  keepalive_timeout: float = 75.0) -> tuple[web.AppRunner, tuple[str, int]]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, keepalive_timeout=keepalive_timeout)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, ("127.0.0.1", port)


def test_answers_by_length_and_chunked_and_connections_are_kept() -> None:
    peers_seen: set[Any] = set()

    async def handler(request: web.Request) -> web.StreamResponse:
        peers_seen.add(request.transport.get_extra_info("peername") if request.transport else None)
        body = await request.read()
        if request.path == "/chunked":
            response = web.StreamResponse(status=200)
            response.enable_chunked_encoding()
            await response.prepare(request)
            for piece in (b"one,", b"two,", b"three"):
                await response.write(piece)
            await response.write_eof()
            return response
        if request.path == "/missing":
            return web.Response(status=404)
        return web.Response(status=200, body=request.method.encode() + b" " + body + b" " +
                            request.headers.get("X-Test", "").encode())

    async def go() -> None:
        runner, address = await serving(handler)
        peers = PeerConnections(connect_s=2.0, per_peer=4)
        try:
            assert await peers.request(address, "POST", "/echo", {"X-Test": "yes"}, b"payload") == \
                (200, b"POST payload yes")
            assert await peers.request(address, "GET", "/chunked", {}, b"") == (200, b"one,two,three")
            assert await peers.request(address, "GET", "/missing", {}, b"") == (404, b"")
            # Sequential requests share one kept-alive connection.
            assert len(peers_seen) == 1
            answers = await asyncio.gather(*(peers.request(address, "POST", "/echo", {}, str(i).encode())
                                             for i in range(10)))
            assert sorted(answers) == sorted((200, f"POST {i} ".encode()) for i in range(10))
            assert len(peers_seen) <= 4  # at most per_peer connections at once
        finally:
            peers.close()
            await runner.cleanup()
    run(go())


def test_a_connection_the_peer_closed_while_idle_is_replaced() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(text="fine")

    async def go() -> None:
        runner, address = await serving(handler, keepalive_timeout=0.2)
        peers = PeerConnections(connect_s=2.0, per_peer=4)
        try:
            assert await peers.request(address, "GET", "/a", {}, b"") == (200, b"fine")
            await asyncio.sleep(0.5)  # the server drops the idle connection meanwhile
            assert await peers.request(address, "GET", "/b", {}, b"") == (200, b"fine")
        finally:
            peers.close()
            await runner.cleanup()
    run(go())


def test_an_unreachable_peer_is_a_connection_failure() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    async def go() -> None:
        peers = PeerConnections(connect_s=2.0, per_peer=4)
        with pytest.raises(PeerHttpError):
            await peers.request(("127.0.0.1", port), "GET", "/", {}, b"")
        client = InternalClient(b"secret", Timeouts())
        try:
            with pytest.raises(PeerError) as caught:
                await client.request_json("GET", f"http://127.0.0.1:{port}", "/_internal/d/record", {"kind": "x"})
            assert caught.value.status is None  # counted as a dead peer, not as an answer
        finally:
            await client.close()
    run(go())


def test_a_call_given_its_own_deadline_outlasts_the_configured_one() -> None:
    """An operator's "run a pass now" waits for minutes of work: the configured request
    deadline must not end it (and report a busy node down)."""
    async def handler(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(0.6)
        return web.json_response({"done": True})

    async def go() -> None:
        runner, (host, port) = await serving(handler)
        client = InternalClient(b"secret", Timeouts(request_s=0.2))
        try:
            with pytest.raises(PeerError):
                await client.request_json("POST", f"http://{host}:{port}", "/_internal/_node/jobs/gc/run")
            status, answer = await client.request_json("POST", f"http://{host}:{port}", "/_internal/_node/jobs/gc/run",
                                                       timeout_s=5.0)
            assert (status, answer) == (200, {"done": True})
        finally:
            await client.close()
            await runner.cleanup()
    run(go())


def test_a_server_error_is_a_peer_error_with_its_status() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=507, text="full")

    async def go() -> None:
        runner, (host, port) = await serving(handler)
        client = InternalClient(b"secret", Timeouts())
        try:
            with pytest.raises(PeerError) as caught:
                await client.request_json("POST", f"http://{host}:{port}", "/_internal/d/records", {"part": "1"}, [])
            assert caught.value.status == 507
        finally:
            await client.close()
            await runner.cleanup()
    run(go())


@pytest.mark.parametrize("chunked_body", [b"zz\r\n", b"1" * (80 * 1024) + b"\r\n"],
                         ids=["bad-size", "endless-size-line"])
def test_a_malformed_chunked_answer_is_a_peer_failure(chunked_body: bytes) -> None:
    """A peer answering garbage must fail like a dead peer (the quorum moves on to another
    replica), not raise something the request handler would turn into a 500."""
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked_body)
        await writer.drain()
        writer.close()

    async def go() -> None:
        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        peers = PeerConnections(connect_s=2.0, per_peer=4)
        try:
            with pytest.raises(PeerHttpError):
                await peers.request(("127.0.0.1", port), "GET", "/", {}, b"")
        finally:
            peers.close()
            server.close()
            await server.wait_closed()
    run(go())


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def raw_peer(handler: Handler, per_peer: int = 1) -> AsyncIterator[tuple[PeerConnections, tuple[str, int]]]:
    """A server answering each connection with ``handler`` (crafted bytes), and a client pool."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    peers = PeerConnections(connect_s=2.0, per_peer=per_peer)
    try:
        yield peers, ("127.0.0.1", server.sockets[0].getsockname()[1])
    finally:
        peers.close()
        server.close()
        await server.wait_closed()


def answering(*answers: bytes, close_after: bool = True) -> Handler:
    """A connection handler that reads each request's head and writes the next of ``answers``
    as it is (then closes the connection if ``close_after``, else waits for the client to)."""
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for raw in answers:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(raw)
            await writer.drain()
        if not close_after:
            await reader.read()
        writer.close()
    return answer


@pytest.mark.parametrize("answer", [b"HTTP/1.1 2\xb200 OK\r\nContent-Length: 0\r\n\r\n",
                                    b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\n",
                                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n+1\r\nx\r\n0\r\n\r\n"],
                         ids=["status", "content-length", "chunk-size"])
def test_a_number_that_is_not_ascii_digits_is_a_peer_failure(answer: bytes) -> None:
    """'²' (latin-1 0xB2) passes str.isdigit() but not int(): a ValueError would become a 500."""
    async def go() -> None:
        async with raw_peer(answering(answer)) as (peers, address):
            with pytest.raises(PeerHttpError):
                await peers.request(address, "GET", "/", {}, b"")
    run(go())


def test_an_interim_answer_is_skipped_and_the_next_request_gets_its_own() -> None:
    handler = answering(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst",
                        b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond", close_after=False)

    async def go() -> None:
        async with raw_peer(handler) as (peers, address):
            assert await peers.request(address, "GET", "/1", {}, b"") == (200, b"first")
            assert await peers.request(address, "GET", "/2", {}, b"") == (200, b"second")
    run(go())


def test_an_answer_delimited_by_the_connection_end_is_read_to_its_end() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\npart one,")
        await writer.drain()
        await asyncio.sleep(0.2)  # the client has read the first piece meanwhile
        writer.write(b"part two")
        await writer.drain()
        writer.close()

    async def go() -> None:
        async with raw_peer(answer) as (peers, address):
            assert await peers.request(address, "GET", "/", {}, b"") == (200, b"part one,part two")
            with pytest.raises(PeerHttpError):  # longer than the caller accepts
                await peers.request(address, "GET", "/", {}, b"", max_bytes=10)
    run(go())


@pytest.mark.parametrize("answer", [b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n0123456789a",
                                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n012345\r\n"
                                    b"5\r\n6789a\r\n0\r\n\r\n"],
                         ids=["length", "chunked"])
def test_an_answer_over_the_callers_limit_is_a_peer_failure(answer: bytes) -> None:
    async def go() -> None:
        async with raw_peer(answering(answer)) as (peers, address):
            with pytest.raises(PeerHttpError):
                await peers.request(address, "GET", "/", {}, b"", max_bytes=10)
            assert await peers.request(address, "GET", "/", {}, b"", max_bytes=11) == (200, b"0123456789a")
    run(go())


def test_an_idle_connection_the_peer_closed_is_not_written_to() -> None:
    """A block PUT (a MiB) must not be written onto a connection whose end was seen already."""
    received: list[int] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
        received.append(length)
        await reader.readexactly(length)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()  # without saying Connection: close

    async def go() -> None:
        async with raw_peer(answer) as (peers, address):
            assert await peers.request(address, "PUT", "/a", {}, b"x") == (200, b"ok")
            reader, writer = peers._idle[address][0]
            while not reader.at_eof():  # until the client has seen the end
                await asyncio.sleep(0.01)
            writes: list[int] = []
            original = writer.write
            writer.write = lambda data: (writes.append(len(data)), original(data))[1]  # type: ignore[method-assign]
            assert await peers.request(address, "PUT", "/b", {}, b"y" * (1 << 20)) == (200, b"ok")
            assert writes == []  # nothing went to the closed connection
            assert received == [1, 1 << 20]
    run(go())


def test_a_request_finishing_after_close_does_not_pool_its_connection() -> None:
    """close() closes the idle connections; one of a request still running then (or started
    later) is closed when the request ends, not left open in a pool nobody closes again."""
    hung_up = asyncio.Event()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await answering(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", close_after=False)(reader, writer)
        hung_up.set()

    async def go() -> None:
        async with raw_peer(answer) as (peers, address):
            peers.close()
            assert await peers.request(address, "GET", "/", {}, b"") == (200, b"ok")
            await asyncio.wait_for(hung_up.wait(), 10)  # (a TimeoutError: the client kept it open)
    run(go())
