"""A lean HTTP/1.1 client for the requests nodes send each other (record reads and writes,
block transfers): kept-alive connections per peer, the request sent in one write, the
answer read by its Content-Length.

Every quorum read and write makes such requests, and aiohttp's general client spends
more CPU on each (cookie jar, tracing, URL objects, its own parser state) than the peer
spends answering it. Bodies here are whole in memory already (JSON, a block of at most a
few MiB), so nothing of that is needed.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Callable
from urllib.parse import urlsplit

__all__ = ["PeerConnections", "PeerHttpError", "MAX_RESPONSE_BYTES"]

MAX_RESPONSE_BYTES = 256 * 1024 * 1024  # a listing page of inline records at most
_MAX_HEAD_BYTES = 64 * 1024
_JOIN_MAX_BYTES = 64 * 1024
_WRITE_SLICE_BYTES = 256 * 1024

_Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class PeerHttpError(Exception):
    """The connection failed or the answer was not HTTP we understand (status unknown)."""


class PeerConnections:
    """Idle connections per peer, at most `per_peer` in use at once per peer."""

    def __init__(self, connect_s: float, per_peer: int, buffer_bytes: int = _MAX_HEAD_BYTES,
                 send_buffer_bytes: int | None = None) -> None:
        """`buffer_bytes`: what a connection reads ahead (and the largest answer head); a
        pool that reads blocks sets it above a read, so one is read without pausing.
        `send_buffer_bytes` caps the kernel's send buffer (left to autotuning without): a
        body's progress, as the writes drain, then follows what the peer has taken."""
        self._send_buffer_bytes = send_buffer_bytes
        self._connect_s = connect_s
        self._per_peer = per_peer
        self._buffer_bytes = max(buffer_bytes, _MAX_HEAD_BYTES)
        self._idle: dict[tuple[str, int], list[_Conn]] = {}
        self._slots: dict[tuple[str, int], asyncio.Semaphore] = {}
        self._addresses: dict[str, tuple[str, int] | None] = {}
        self._closed = False

    def address(self, base_url: str) -> tuple[str, int] | None:
        """(host, port) of a plain-HTTP peer URL; None for anything else (TLS)."""
        if base_url not in self._addresses:
            parts = urlsplit(base_url)
            plain = parts.scheme == "http" and parts.hostname is not None
            self._addresses[base_url] = (parts.hostname or "", parts.port or 80) if plain else None
        return self._addresses[base_url]

    async def request(self, address: tuple[str, int], method: str, path_qs: str,
                      headers: dict[str, str], body: bytes | bytearray | memoryview,
                      max_bytes: int = MAX_RESPONSE_BYTES,
                      on_progress: Callable[[], None] | None = None) -> tuple[int, bytes]:
        """Send one request and read its answer (of at most `max_bytes`); `on_progress` is
        called each time a slice of a large body has gone to the socket. A kept-alive
        connection that fails (the peer closed it while idle, or restarted) is dropped and the
        request sent again on the next idle one or a new one: the requests sent this way are
        idempotent (reads, and last-writer-wins merges). A new connection that fails is the
        peer's failure."""
        host, port = address
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"  # an IPv6 address is bracketed
        head = [f"{method} {path_qs} HTTP/1.1\r\nHost: {authority}\r\nContent-Length: {len(body)}\r\n"]
        head += [f"{name}: {value}\r\n" for name, value in headers.items()]
        head.append("\r\n")
        head_bytes = "".join(head).encode("latin-1")
        # A small body goes out with its head in one write; a block is not copied into a
        # new MiB-sized buffer (page faults and all) only to be written once more.
        message: list[bytes | bytearray | memoryview] = (
            [head_bytes + body] if len(body) <= _JOIN_MAX_BYTES else [head_bytes, body])
        slots = self._slots.get(address)
        if slots is None:
            slots = self._slots[address] = asyncio.Semaphore(self._per_peer)
        async with slots:
            idle = self._idle.setdefault(address, [])
            while True:
                while idle and idle[-1][0].at_eof():  # closed by the peer: not worth a write
                    idle.pop()[1].close()
                reused = bool(idle)
                conn = idle.pop() if reused else await self._open(host, port)
                try:
                    status, payload, keep = await _exchange(conn, message, method, max_bytes, on_progress)
                except (OSError, EOFError, asyncio.IncompleteReadError, PeerHttpError) as exc:
                    conn[1].close()
                    if reused:
                        continue  # closed by the peer while idle: try the next one, or a new one
                    raise PeerHttpError(f"{type(exc).__name__}: {exc}") from exc
                except BaseException:
                    conn[1].close()  # cancelled mid-answer: the connection's state is unknown
                    raise
                if keep and not self._closed:  # (after close, nobody would close it later)
                    idle.append(conn)
                else:
                    conn[1].close()
                return status, payload

    async def _open(self, host: str, port: int) -> _Conn:
        try:
            async with asyncio.timeout(self._connect_s):
                reader, writer = await asyncio.open_connection(host, port, limit=self._buffer_bytes)
        except (OSError, TimeoutError) as exc:
            raise PeerHttpError(f"cannot connect to {host}:{port}: {type(exc).__name__}: {exc}") from exc
        if self._send_buffer_bytes is not None:
            writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self._send_buffer_bytes)
        return reader, writer

    def close(self) -> None:
        self._closed = True
        for conns in self._idle.values():
            for _, writer in conns:
                writer.close()
        self._idle.clear()


async def _exchange(conn: _Conn, message: list[bytes | bytearray | memoryview], method: str,
                    max_bytes: int, on_progress: Callable[[], None] | None) -> tuple[int, bytes, bool]:
    """Write a request, read the answer: (status, body, whether the connection stays usable)."""
    reader, writer = conn
    for part in message:
        if len(part) <= _WRITE_SLICE_BYTES:
            writer.write(part)
            continue
        # asyncio's transport copies whatever the socket does not take at once into its
        # own buffer: a block written whole would cost most of a second copy of itself per
        # peer while it drains. Slice by slice, that copy stays one slice at most.
        view = memoryview(part)
        for at in range(0, len(view), _WRITE_SLICE_BYTES):
            writer.write(view[at:at + _WRITE_SLICE_BYTES])
            await writer.drain()
            if on_progress is not None:
                on_progress()
    if sum(len(part) for part in message) > _JOIN_MAX_BYTES:
        await writer.drain()
    while True:
        status, fields, keep = await _read_head(reader)
        if not 100 <= status < 200:
            break  # an interim answer (100 Continue, 103 Early Hints) precedes the real one
    if method == "HEAD" or status in (204, 304):
        return status, b"", keep
    if "chunked" in fields.get("transfer-encoding", "").lower():
        return status, await _read_chunked(reader, max_bytes), keep
    length = fields.get("content-length")
    if length is None:  # delimited by the end of the connection
        return status, await _read_to_eof(reader, max_bytes), False
    if not _is_number(length) or int(length) > max_bytes:
        raise PeerHttpError(f"bad Content-Length {length[:20]!r}")
    return status, await reader.readexactly(int(length)), keep


def _is_number(text: str) -> bool:
    """Only ASCII digits: str.isdigit() also passes '²', which int() refuses."""
    return text.isascii() and text.isdecimal()


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bool]:
    """An answer's status line and fields: (status, fields by lower-case name, keep-alive)."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError as exc:
        raise PeerHttpError("answer headers too large") from exc
    lines = raw.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code = rest[:3]
    if not version.startswith("HTTP/1.") or not _is_number(code):
        raise PeerHttpError(f"not an HTTP answer: {lines[0][:80]!r}")
    fields: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip().lower()] = value.strip()
    keep = version == "HTTP/1.1" and fields.get("connection", "").lower() != "close"
    return int(code), fields, keep


async def _read_to_eof(reader: asyncio.StreamReader, max_bytes: int) -> bytes:
    """The rest of the connection (read() alone returns only what is buffered already)."""
    body = bytearray()
    while piece := await reader.read(max(1, min(max_bytes + 1 - len(body), 1024 * 1024))):
        body += piece
        if len(body) > max_bytes:
            raise PeerHttpError("answer too large")
    return bytes(body)


async def _read_chunked(reader: asyncio.StreamReader, max_bytes: int) -> bytes:
    try:
        return await _read_chunks(reader, max_bytes)
    except asyncio.LimitOverrunError as exc:  # a chunk-size or trailer line without end
        raise PeerHttpError("chunk line too long") from exc


async def _read_chunks(reader: asyncio.StreamReader, max_bytes: int) -> bytes:
    body = bytearray()
    while True:
        size_line = (await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip()
        if not size_line or size_line.strip(b"0123456789abcdefABCDEF"):  # int() takes "+1", "1_0"
            raise PeerHttpError("bad chunk size")
        size = int(size_line, 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailer fields, then the end
                pass
            return bytes(body)
        if len(body) + size > max_bytes:
            raise PeerHttpError("answer too large")
        body += await reader.readexactly(size + 2)
        del body[-2:]
