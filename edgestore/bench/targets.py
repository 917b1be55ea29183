"""The object stores a benchmark drives, through S3 or through Swift, with one small
interface: the same load reaches edgestore, OpenStack Swift or any S3 server alike.

Requests go through one aiohttp session with a connection pool as large as the
concurrency, so connection setup is not what is measured. Bodies are sent from async
generators, never built whole in memory.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import AsyncIterator, Protocol
from urllib.parse import quote

import aiohttp

from edgestore.sigv4_client import sign_headers

__all__ = ["Target", "S3Target", "SwiftTarget", "BenchError", "Body"]

Body = AsyncIterator[bytes]
READ_CHUNK = 256 * 1024


class BenchError(Exception):
    """A request the store answered with an error (counted, not fatal)."""


class Target(Protocol):
    label: str

    async def open(self, concurrency: int) -> None: ...

    async def close(self) -> None: ...

    async def create_bucket(self, bucket: str) -> None: ...

    async def delete_bucket(self, bucket: str) -> None: ...

    async def put(self, bucket: str, key: str, body: Body, size: int) -> None: ...

    async def get(self, bucket: str, key: str) -> int: ...

    async def head(self, bucket: str, key: str) -> None: ...

    async def delete(self, bucket: str, key: str) -> None: ...

    async def list(self, bucket: str, delimiter: str = "") -> int: ...


class _Http:
    def __init__(self) -> None:
        self.session: aiohttp.ClientSession | None = None

    async def open(self, concurrency: int) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=concurrency * 2, limit_per_host=concurrency * 2),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=120), auto_decompress=False)

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    async def call(self, method: str, url: str, headers: dict[str, str], body: Body | None = None,
                   ok: tuple[int, ...] = (200, 201, 202, 204), read: bool = True) -> tuple[int, bytes, int]:
        """(status, the body when small enough to parse, bytes received)."""
        assert self.session is not None
        async with self.session.request(method, url, headers=headers, data=body) as resp:
            received, kept = 0, bytearray()
            async for chunk in resp.content.iter_chunked(READ_CHUNK):
                received += len(chunk)
                if read and len(kept) < 4 * 1024 * 1024:
                    kept += chunk
            if resp.status not in ok:
                raise BenchError(f"{method} {url.split('?')[0]}: {resp.status} {bytes(kept[:200])!r}")
            return resp.status, bytes(kept), received


class S3Target(_Http):
    """Path-style S3 with SigV4 headers (UNSIGNED-PAYLOAD for bodies, as aws-sdk clients
    may send over TLS and any S3 server accepts)."""

    def __init__(self, endpoint: str, access_key: str, secret_key: str, region: str = "us-east-1") -> None:
        super().__init__()
        self.endpoint = endpoint.rstrip("/")
        self.access_key, self.secret_key, self.region = access_key, secret_key, region
        self.label = f"S3 {self.endpoint}"

    def _url(self, bucket: str, key: str = "", query: str = "") -> str:
        path = f"/{bucket}" + (f"/{quote(key, safe='/~')}" if key else "")
        return self.endpoint + path + (f"?{query}" if query else "")

    def _signed(self, method: str, url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = dict(extra or {})
        headers.update(sign_headers(method, url, headers, "UNSIGNED-PAYLOAD", self.access_key, self.secret_key,
                                    self.region))
        return headers

    async def create_bucket(self, bucket: str) -> None:
        url = self._url(bucket)
        await self.call("PUT", url, self._signed("PUT", url), ok=(200, 409))

    async def delete_bucket(self, bucket: str) -> None:
        url = self._url(bucket)
        await self.call("DELETE", url, self._signed("DELETE", url), ok=(204, 404, 409))

    async def put(self, bucket: str, key: str, body: Body, size: int) -> None:
        url = self._url(bucket, key)
        await self.call("PUT", url, self._signed("PUT", url, {"Content-Length": str(size)}), body)

    async def get(self, bucket: str, key: str) -> int:
        url = self._url(bucket, key)
        return (await self.call("GET", url, self._signed("GET", url), read=False))[2]

    async def head(self, bucket: str, key: str) -> None:
        url = self._url(bucket, key)
        await self.call("HEAD", url, self._signed("HEAD", url))

    async def delete(self, bucket: str, key: str) -> None:
        url = self._url(bucket, key)
        await self.call("DELETE", url, self._signed("DELETE", url), ok=(204, 200))

    async def list(self, bucket: str, delimiter: str = "") -> int:
        """List the whole bucket (ListObjectsV2, pages of 1000); returns the entries seen."""
        entries, token = 0, ""
        ns = "{http://s3.amazonaws.com/doc/2006-03-01/}"
        while True:
            query = "list-type=2&max-keys=1000"
            if delimiter:
                query += f"&delimiter={quote(delimiter, safe='')}"
            if token:
                query += f"&continuation-token={quote(token, safe='')}"
            url = self._url(bucket, query=query)
            _, data, _ = await self.call("GET", url, self._signed("GET", url))
            root = ET.fromstring(data)
            entries += len(root.findall(f"{ns}Contents")) + len(root.findall(f"{ns}CommonPrefixes"))
            token = root.findtext(f"{ns}NextContinuationToken") or ""
            if root.findtext(f"{ns}IsTruncated") != "true" or not token:
                return entries


class SwiftTarget(_Http):
    """Swift with TempAuth v1: one login, then the token on every request."""

    def __init__(self, auth_url: str, user: str, key: str) -> None:
        super().__init__()
        self.auth_url, self.user, self.key = auth_url, user, key
        self.storage_url = ""
        self.token = ""
        self.label = f"Swift {auth_url}"

    async def open(self, concurrency: int) -> None:
        await super().open(concurrency)
        assert self.session is not None
        async with self.session.get(self.auth_url, headers={"X-Auth-User": self.user, "X-Auth-Key": self.key}) as r:
            if r.status not in (200, 204):
                raise BenchError(f"Swift login at {self.auth_url} answered {r.status}")
            self.storage_url, self.token = r.headers["X-Storage-Url"], r.headers["X-Auth-Token"]

    def _url(self, bucket: str, key: str = "", query: str = "") -> str:
        path = f"/{quote(bucket)}" + (f"/{quote(key, safe='/~')}" if key else "")
        return self.storage_url + path + (f"?{query}" if query else "")

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {"X-Auth-Token": self.token, **(extra or {})}

    async def create_bucket(self, bucket: str) -> None:
        await self.call("PUT", self._url(bucket), self._headers())

    async def delete_bucket(self, bucket: str) -> None:
        await self.call("DELETE", self._url(bucket), self._headers(), ok=(204, 404, 409))

    async def put(self, bucket: str, key: str, body: Body, size: int) -> None:
        await self.call("PUT", self._url(bucket, key), self._headers({"Content-Length": str(size)}), body)

    async def get(self, bucket: str, key: str) -> int:
        return (await self.call("GET", self._url(bucket, key), self._headers(), read=False))[2]

    async def head(self, bucket: str, key: str) -> None:
        await self.call("HEAD", self._url(bucket, key), self._headers())

    async def delete(self, bucket: str, key: str) -> None:
        await self.call("DELETE", self._url(bucket, key), self._headers())

    async def list(self, bucket: str, delimiter: str = "") -> int:
        """List the whole container (plain text pages of 10000 names, marker-paged)."""
        entries, marker = 0, ""
        while True:
            query = "limit=10000" + (f"&delimiter={quote(delimiter, safe='')}" if delimiter else "")
            if marker:
                query += f"&marker={quote(marker, safe='')}"
            status, data, _ = await self.call("GET", self._url(bucket, query=query), self._headers())
            names = data.decode().splitlines() if status == 200 else []
            entries += len(names)
            if len(names) < 10000:
                return entries
            marker = names[-1]
