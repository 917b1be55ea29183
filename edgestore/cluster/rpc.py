"""Node-to-node HTTP: requests signed with the cluster secret, and the client that sends them.

Every internal request carries X-Edgestore-Time (unix seconds) and X-Edgestore-Signature,
an HMAC-SHA256 with the cluster secret over the method, the path with its query, the
time and the BLAKE2b-256 digest of the body (X-Edgestore-Body). The receiver refuses a
request whose signature does not match or whose time is more than MAX_SKEW_S away from
its own clock, and checks the body against the digest before using it. For a block the
body digest is the block id itself, and the content check is the checksum the id
carries (store/blockid.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import quote, urlencode

import aiohttp
from yarl import URL

from edgestore.cluster.peerhttp import MAX_RESPONSE_BYTES, PeerConnections, PeerHttpError
from edgestore.config import Timeouts
from edgestore.errors import PeerError

__all__ = ["InternalClient", "JsonBody", "sign", "verify_signature", "body_digest", "MAX_SKEW_S",
           "TIME_HEADER", "SIGNATURE_HEADER", "BODY_HEADER"]

MAX_SKEW_S = 300
TIME_HEADER = "X-Edgestore-Time"
SIGNATURE_HEADER = "X-Edgestore-Signature"
BODY_HEADER = "X-Edgestore-Body"
EMPTY_DIGEST = hashlib.blake2b(b"", digest_size=32).hexdigest()
# What a block connection reads ahead: more than a read's stretch (1 MiB), so an answer
# is read without the reader pausing the socket every few hundred KiB.
BLOCK_READ_AHEAD_BYTES = 2 * 1024 * 1024
# The kernel's send buffer of a block connection (Linux doubles it). Autotuned, it grows to
# MiBs: a block would vanish into it at once and its real progress to a slow peer, which
# decides whether a late replica is kept going (Coordinator.put_block), could not be seen.
BLOCK_SEND_BUFFER_BYTES = 256 * 1024


def body_digest(body: bytes | bytearray | memoryview) -> str:
    return hashlib.blake2b(body, digest_size=32).hexdigest()


def sign(secret: bytes, method: str, path_qs: str, timestamp: str, digest: str) -> str:
    message = f"{method.upper()}\n{path_qs}\n{timestamp}\n{digest}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def verify_signature(secret: bytes, method: str, path_qs: str, headers: Any,
                     now: float | None = None) -> str | None:
    """Why the request is refused, or None if its signature holds and is fresh."""
    timestamp = headers.get(TIME_HEADER, "")
    signature = headers.get(SIGNATURE_HEADER, "")
    digest = headers.get(BODY_HEADER, "")
    if not timestamp or not signature or not digest:
        return "unsigned internal request"
    try:
        age = abs((now if now is not None else time.time()) - float(timestamp))
    except ValueError:
        return "malformed timestamp"
    if age > MAX_SKEW_S:
        return "stale internal request"
    expected = sign(secret, method, path_qs, timestamp, digest)
    if not hmac.compare_digest(expected, signature):
        return "bad signature"
    return None


def signed_headers(secret: bytes, method: str, path_qs: str, digest: str) -> dict[str, str]:
    timestamp = f"{time.time():.3f}"
    return {TIME_HEADER: timestamp, BODY_HEADER: digest,
            SIGNATURE_HEADER: sign(secret, method, path_qs, timestamp, digest)}


def path_with_query(path: str, params: dict[str, str] | None) -> str:
    quoted = quote(path, safe="/")
    if params:
        quoted += "?" + urlencode(sorted(params.items()), quote_via=quote, safe="")
    return quoted


@dataclass(frozen=True)
class JsonBody:
    """A JSON request body encoded and digested once: a write sends the same records to
    every replica, and encoding inline data is most of the cost of sending it."""
    data: bytes
    digest: str

    @classmethod
    def of(cls, payload: Any) -> JsonBody:
        data = json.dumps(payload, separators=(",", ":")).encode()
        return cls(data, body_digest(data))


class InternalClient:
    """Signed requests to peers: one pooled session, a connection cap per peer, deadlines."""

    def __init__(self, secret: bytes, timeouts: Timeouts, per_peer_connections: int = 16) -> None:
        self._secret = secret
        self._timeouts = timeouts
        self._session: aiohttp.ClientSession | None = None
        self._per_peer = per_peer_connections
        self._peers = PeerConnections(timeouts.connect_s, per_peer_connections)
        # Blocks have a pool of their own: a large upload's transfers must not keep the
        # record requests of every other client waiting for a connection.
        self._block_peers = PeerConnections(timeouts.connect_s, per_peer_connections, BLOCK_READ_AHEAD_BYTES,
                                            BLOCK_SEND_BUFFER_BYTES)

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=256, limit_per_host=self._per_peer),
                timeout=aiohttp.ClientTimeout(
                    total=self._timeouts.request_s, sock_connect=self._timeouts.connect_s),
                auto_decompress=False,
            )
        return self._session

    async def _lean_request(self, peers: PeerConnections, address: tuple[str, int], method: str, base_url: str,
                            path: str, params: dict[str, str] | None, body: bytes | bytearray | memoryview,
                            digest: str, max_bytes: int = MAX_RESPONSE_BYTES,
                            timeout_s: float | None = None,
                            on_progress: Callable[[], None] | None = None) -> tuple[int, bytes]:
        """`request`, over the lean client (peerhttp) that plain-HTTP peers get."""
        path_qs = path_with_query(path, params)
        headers = signed_headers(self._secret, method, path_qs, digest)
        try:
            async with asyncio.timeout(timeout_s or self._timeouts.request_s):
                status, payload = await peers.request(address, method, path_qs, headers, body, max_bytes,
                                                      on_progress)
        except (PeerHttpError, TimeoutError) as exc:
            raise PeerError(base_url, f"{type(exc).__name__}: {exc}") from exc
        if status >= 500:
            raise PeerError(base_url, f"{method} {path} answered {status}", status)
        return status, payload

    async def close(self) -> None:
        self._peers.close()
        self._block_peers.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(self, method: str, base_url: str, path: str,
                      params: dict[str, str] | None = None, body: bytes | bytearray | memoryview = b"",
                      digest: str | None = None, max_bytes: int = MAX_RESPONSE_BYTES,
                      timeout_s: float | None = None,
                      on_progress: Callable[[], None] | None = None) -> tuple[int, bytes]:
        """Send one signed request (a block transfer, a ring file); returns (status, body).
        Transport failures and 5xx answers raise PeerError; other statuses are the
        caller's to interpret. A plain-HTTP peer's answer over `max_bytes` is a failure.
        `timeout_s` replaces the configured request deadline, for the few calls that wait
        on long work by design (an operator's "run a pass now"). `on_progress` is called
        as a large body goes out to a plain-HTTP peer (a TLS peer's transfer reports none)."""
        digest = digest or (body_digest(body) if body else EMPTY_DIGEST)
        address = self._block_peers.address(base_url)
        if address is not None:
            return await self._lean_request(self._block_peers, address, method, base_url, path, params, body, digest,
                                            max_bytes, timeout_s, on_progress)
        path_qs = path_with_query(path, params)
        headers = signed_headers(self._secret, method, path_qs, digest)
        url = URL(base_url.rstrip("/") + path_qs, encoded=True)
        timeout = None if timeout_s is None else aiohttp.ClientTimeout(
            total=timeout_s, sock_connect=self._timeouts.connect_s)
        try:
            async with self._get_session().request(method, url, data=body or None,
                                                   headers=headers, timeout=timeout) as resp:
                payload = await resp.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise PeerError(base_url, f"{type(exc).__name__}: {exc}") from exc
        if resp.status >= 500:
            raise PeerError(base_url, f"{method} {path} answered {resp.status}", resp.status)
        return resp.status, payload

    async def request_json_text(self, method: str, base_url: str, path: str,
                                params: dict[str, str] | None = None, payload: Any = None,
                                timeout_s: float | None = None) -> tuple[int, bytes]:
        """request_json's answer still encoded, for a caller that may not need to decode it
        (a listing page that matches another replica's byte for byte)."""
        body = payload if isinstance(payload, JsonBody) or payload is None else JsonBody.of(payload)
        data, digest = (body.data, body.digest) if body is not None else (b"", EMPTY_DIGEST)
        address = self._peers.address(base_url)
        if address is None:
            return await self.request(method, base_url, path, params, data, digest, timeout_s=timeout_s)
        return await self._lean_request(self._peers, address, method, base_url, path, params, data, digest,
                                        timeout_s=timeout_s)

    async def request_json(self, method: str, base_url: str, path: str,
                           params: dict[str, str] | None = None, payload: Any = None,
                           timeout_s: float | None = None) -> tuple[int, Any]:
        """A request with a JSON body (`payload`, or a JsonBody encoded once for several
        peers), answered with JSON."""
        status, raw = await self.request_json_text(method, base_url, path, params, payload, timeout_s)
        try:
            return status, json.loads(raw) if raw else None
        except ValueError as exc:
            raise PeerError(base_url, f"{method} {path}: malformed answer") from exc
