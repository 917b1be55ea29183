"""The lean peer client (cluster/peerhttp.py) against a real aiohttp server: answers by
length and chunked, kept-alive connections reused, a connection the server closed while
idle replaced, and an unreachable peer reported as a connection failure."""

from __future__ import annotations

import asyncio
import socket
from typing import Any, Awaitable, Callable

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
