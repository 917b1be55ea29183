"""A small synchronous S3 client for the mount: path-style requests over a pool of kept-alive
HTTP/1.1 connections (``http1``), signed with SigV4 (``edgestore.sigv4_client``).

The mount talks plain S3 so that it works against any S3 server; against edgestore a copy
moves no object data, so renames are cheap. Bodies are bytes or regions of a local file
(streamed from disk, never loaded whole); answers are read whole, so callers ask only for
bounded ones (a listing page, a small ranged GET), or streamed to the caller as they arrive
(``get_into``).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import logging
import os
import ssl
import threading
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from urllib.parse import quote, unquote_plus, urlsplit

from edgestore.sigv4_client import sign_headers

from .http1 import Connection, Sink

__all__ = ["S3Error", "S3Client", "ObjectHead", "ListEntry", "ListPage", "FileRegion"]

log = logging.getLogger("edgestore.fuse")

_SEND_BLOCK = 256 * 1024
_RETRIES = 3
_RETRY_STATUSES = frozenset({500, 502, 503, 504})
_HASH_CHUNK = 256 * 1024


class S3Error(Exception):
    """An answer other than the expected one, or a server that cannot be reached (status 0)."""

    def __init__(self, status: int, code: str, message: str = "") -> None:
        super().__init__(f"{status} {code} {message}".strip())
        self.status = status
        self.code = code


class FileRegion:
    """``length`` bytes of an open file from ``offset``: a request body read in blocks with
    pread, so it can be hashed, sent and sent again without holding it in memory."""

    def __init__(self, fd: int, offset: int, length: int) -> None:
        self.fd, self.offset, self.length = fd, offset, length
        self._pos = 0

    def rewind(self) -> None:
        self._pos = 0

    def readinto(self, buffer: memoryview) -> int:
        """The next bytes into ``buffer`` (into one buffer, used again, not a new bytes object
        per block: those kept glibc's heaps growing, some 6 MiB of the mount's peak RSS while
        four parts were sent); 0 at the end."""
        want = min(len(buffer), self.length - self._pos)
        if want <= 0:
            return 0
        got = os.preadv(self.fd, [buffer[:want]], self.offset + self._pos)
        if not got:  # the file is shorter than the region: pad with the zeros of a hole
            buffer[:want] = bytes(want)
            got = want
        self._pos += got
        return got

    def sha256(self) -> str:
        digest = hashlib.sha256()
        buffer = memoryview(bytearray(min(_HASH_CHUNK, max(self.length, 1))))
        self.rewind()
        while got := self.readinto(buffer):
            digest.update(buffer[:got])
        self.rewind()
        return digest.hexdigest()


Body = bytes | FileRegion | None


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class ObjectHead:
    size: int
    etag: str
    last_modified_ns: int
    content_type: str
    meta: dict[str, str] = field(default_factory=dict)  # x-amz-meta-* without the prefix, lower case


@dataclass
class ListEntry:
    key: str
    size: int
    etag: str
    last_modified_ns: int
    content_type: str = ""
    meta: dict[str, str] | None = None  # with ``metadata=true``, where the server answers it (edgestore, MinIO)


@dataclass
class ListPage:
    entries: list[ListEntry]
    prefixes: list[str]
    next_token: str | None


def _http_date_ns(value: str | None) -> int:
    if not value:
        return 0
    try:
        return int(parsedate_to_datetime(value).timestamp() * 1_000_000_000)
    except (TypeError, ValueError):
        return 0


def _iso_date_ns(value: str) -> int:
    from datetime import datetime

    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1_000_000_000)
    except ValueError:
        return 0


def _text(node: ET.Element, tag: str) -> str:
    found = node.find(f"{{*}}{tag}")
    return found.text or "" if found is not None else ""


def _head_of(h: dict[str, str], size: int) -> ObjectHead:
    meta = {name[len("x-amz-meta-"):]: value for name, value in h.items() if name.startswith("x-amz-meta-")}
    return ObjectHead(size, h.get("etag", "").strip('"'), _http_date_ns(h.get("last-modified")),
                      h.get("content-type", ""), meta)


def _local(tag: str) -> str:
    """An element's name without its namespace."""
    return tag[tag.rfind("}") + 1:]


def _list_entry(node: ET.Element) -> ListEntry:
    # One pass over the children (a listing page has up to 1000 entries; find() with a
    # namespace wildcard walks them once per field).
    fields: dict[str, str] = {}
    user: ET.Element | None = None
    for child in node:
        name = _local(child.tag)
        if name == "UserMetadata":
            user = child
        else:
            fields[name] = child.text or ""
    entry = ListEntry(unquote_plus(fields.get("Key", "")), int(fields.get("Size") or 0),
                      fields.get("ETag", "").strip('"'), _iso_date_ns(fields.get("LastModified", "")))
    if user is not None:
        entry.meta = {}
        for item in user:
            name = _local(item.tag).lower()
            if name == "content-type":
                entry.content_type = item.text or ""
            elif name.startswith("x-amz-meta-"):
                entry.meta[name[len("x-amz-meta-"):]] = item.text or ""
    return entry


def _list_page_of(root: ET.Element) -> ListPage:
    """A ListObjectsV2 answer, read in one pass over its elements."""
    entries: list[ListEntry] = []
    prefixes: list[str] = []
    truncated, token = False, ""
    for child in root:
        name = _local(child.tag)
        if name == "Contents":
            entries.append(_list_entry(child))
        elif name == "CommonPrefixes":
            prefixes.append(unquote_plus(_text(child, "Prefix")))
        elif name == "IsTruncated":
            truncated = child.text == "true"
        elif name == "NextContinuationToken":
            token = child.text or ""
    return ListPage(entries, prefixes, token or None if truncated else None)


def _error_of(status: int, body: bytes) -> S3Error:
    code, message = http.client.responses.get(status, "Error").replace(" ", ""), ""
    if body:
        try:
            root = ET.fromstring(body)
            code, message = _text(root, "Code") or code, _text(root, "Message")
        except ET.ParseError:
            message = body[:200].decode(errors="replace")
    return S3Error(status, code, message)


class S3Client:
    """One bucket of one S3 endpoint. Thread-safe: each request takes a connection from the pool."""

    def __init__(self, endpoint: str, bucket: str, access_key: str, secret_key: str, region: str = "us-east-1",
                 timeout_s: float = 60.0, ca_file: str | None = None, pool_size: int = 16) -> None:
        parts = urlsplit(endpoint.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) endpoint: {endpoint!r}")
        self.endpoint = f"{parts.scheme}://{parts.netloc}"
        self._base_path = parts.path.rstrip("/")
        self.bucket = bucket
        self._keys = (access_key, secret_key, region)
        self._timeout = timeout_s
        self._https = parts.scheme == "https"
        self._host, self._port = parts.hostname, parts.port or (443 if self._https else 80)
        self._host_header = parts.netloc.rpartition("@")[2]  # (sent and signed as it is)
        self._ssl = ssl.create_default_context(cafile=ca_file) if self._https else None
        self._idle: list[Connection] = []
        self._pool_size = pool_size
        self._lock = threading.Lock()
        self.sent: Counter[str] = Counter()  # requests sent, by kind (``_count``): what benchmarks count

    # -- connections ----------------------------------------------------------------------

    def _take(self) -> Connection:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return Connection(self._host or "", self._port, self._timeout, self._ssl, _SEND_BLOCK)

    def _give_back(self, conn: Connection) -> None:
        with self._lock:
            if len(self._idle) < self._pool_size:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    # -- requests -------------------------------------------------------------------------

    def _count(self, method: str, key: str | None, query: Mapping[str, str] | None,
               headers: Mapping[str, str] | None) -> None:
        kind = method
        if key is None and method == "GET":
            kind = "LIST"
        elif headers and "x-amz-copy-source" in headers:
            kind = "COPY"
        elif query and ("partNumber" in query or "uploads" in query or "uploadId" in query):
            kind = method + " multipart"
        with self._lock:
            self.sent[kind] += 1

    def _target(self, key: str | None, query: Mapping[str, str] | None) -> str:
        path = f"{self._base_path}/{quote(self.bucket, safe='')}"
        if key is not None:
            path += "/" + quote(key, safe="/~")
        if query:
            path += "?" + "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" if v != "" else
                                   quote(k, safe="-_.~") for k, v in sorted(query.items()))
        return path

    def request(self, method: str, key: str | None, query: Mapping[str, str] | None = None,
                headers: Mapping[str, str] | None = None, body: Body = None,
                ok: tuple[int, ...] = (200,), sink: Sink | None = None) -> Response:
        """Send one signed request; retry on a dropped connection or a 5xx. Raises S3Error
        for any status not in ``ok``. ``sink``: see ``http1.Sink`` (called again on a retry)."""
        target = self._target(key, query)
        payload_hash = (body.sha256() if isinstance(body, FileRegion) else
                        hashlib.sha256(body or b"").hexdigest())
        length = body.length if isinstance(body, FileRegion) else len(body or b"")
        self._count(method, key, query, headers)
        last: S3Error | None = None
        for attempt in range(_RETRIES):
            if attempt:
                time.sleep(0.2 * attempt)
            send = {"Host": self._host_header, "Accept-Encoding": "identity", **(headers or {})}
            if body is not None or method in ("PUT", "POST"):
                send["Content-Length"] = str(length)
            send.update(sign_headers(method, self.endpoint + target, send, payload_hash, *self._keys))
            if isinstance(body, FileRegion):
                body.rewind()
            conn: Connection | None = None
            try:
                conn = self._take()
                got = conn.exchange(method, target, send, body, sink)
            except OSError as exc:
                if conn is not None:
                    conn.close()
                last = S3Error(0, "ConnectionError", f"{method} {target}: {exc}")
                continue
            except BaseException:
                if conn is not None:  # the sink gave up inside an answer: the rest is unread
                    conn.close()
                raise
            data = got.body
            answer = Response(got.status, got.headers, data)
            if got.will_close:
                conn.close()
            else:
                self._give_back(conn)
            log.debug("%s %s %s: %d", method, target, send.get("Range", ""), answer.status)
            if answer.status in ok:
                return answer
            last = _error_of(answer.status, data if method != "HEAD" else b"")
            if answer.status not in _RETRY_STATUSES:
                break
        assert last is not None
        raise last

    # -- objects --------------------------------------------------------------------------

    def head(self, key: str) -> ObjectHead | None:
        resp = self.request("HEAD", key, ok=(200, 404))
        if resp.status == 404:
            return None
        return _head_of(resp.headers, int(resp.headers.get("content-length", "0")))

    def get_first(self, key: str, length: int) -> tuple[ObjectHead, bytes] | None:
        """The object's attributes and its first ``length`` bytes in one request (None if it
        does not exist): an open both revalidates and has its first read at once."""
        resp = self.request("GET", key, headers={"Range": f"bytes=0-{length - 1}"}, ok=(200, 206, 404, 416))
        if resp.status == 404:
            return None
        if resp.status == 416:  # an empty object: its attributes from a HEAD
            head = self.head(key)
            return (head, b"") if head is not None else None
        size = len(resp.body)
        if resp.status == 206:
            total = resp.headers.get("content-range", "").rpartition("/")[2]
            size = int(total) if total.isdigit() else size
        return _head_of(resp.headers, size), resp.body

    def get(self, key: str, start: int | None = None, length: int | None = None) -> bytes:
        """The object, or ``length`` bytes of it from ``start`` (fewer at its end)."""
        headers = {}
        if start is not None and length is not None:
            if length <= 0:
                return b""
            headers["Range"] = f"bytes={start}-{start + length - 1}"
        resp = self.request("GET", key, headers=headers, ok=(200, 206, 416))
        return b"" if resp.status == 416 else resp.body

    def get_into(self, key: str, start: int, length: int, write: Callable[[int, memoryview], None]) -> int:
        """``length`` bytes of the object from ``start`` (fewer at its end), handed to
        ``write(offset in the object, piece)`` as they arrive (a view of a buffer used again for
        the next piece), never held whole (after a dropped connection, again from the start);
        returns how many the object had there."""
        if length <= 0:
            return 0
        got = 0

        def sink(status: int, headers: dict[str, str]) -> Callable[[memoryview], None] | None:
            nonlocal got
            if status not in (200, 206):
                return None
            first = headers.get("content-range", "").removeprefix("bytes ").partition("-")[0]
            pos = int(first) if status == 206 and first.isdigit() else 0  # 200: the whole object
            got = 0

            def consume(piece: memoryview) -> None:
                nonlocal pos, got
                write(pos, piece)
                pos += len(piece)
                got = max(got, min(pos, start + length) - start)

            return consume

        self.request("GET", key, headers={"Range": f"bytes={start}-{start + length - 1}"}, ok=(200, 206, 416),
                     sink=sink)
        return got

    def put(self, key: str, body: Body, headers: Mapping[str, str] | None = None) -> str:
        return self.request("PUT", key, headers=headers, body=body if body is not None else b"") \
            .headers.get("etag", "").strip('"')

    def copy(self, source: str, key: str, headers: Mapping[str, str] | None = None) -> None:
        """Server-side copy; with ``headers`` the copy gets them as its metadata (REPLACE)."""
        send = dict(headers or {})
        send["x-amz-copy-source"] = quote(f"/{self.bucket}/{source}", safe="/~")
        send["x-amz-metadata-directive"] = "REPLACE" if headers is not None else "COPY"
        resp = self.request("PUT", key, headers=send, body=b"")
        if b"<Error>" in resp.body[:200]:  # S3 may fail a copy after its 200
            raise _error_of(500, resp.body)

    def delete(self, key: str) -> None:
        self.request("DELETE", key, ok=(200, 204, 404))

    def delete_many(self, keys: list[str]) -> list[str]:
        """DeleteObjects in batches of 1000; returns the keys that could not be deleted."""
        failed: list[str] = []
        for start in range(0, len(keys), 1000):
            batch = keys[start:start + 1000]
            root = ET.Element("Delete")
            ET.SubElement(root, "Quiet").text = "true"
            for key in batch:
                ET.SubElement(ET.SubElement(root, "Object"), "Key").text = key
            body = ET.tostring(root, encoding="utf-8", xml_declaration=True)
            md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
            resp = self.request("POST", None, {"delete": ""}, {"Content-MD5": md5,
                                                                "Content-Type": "application/xml"}, body)
            for err in ET.fromstring(resp.body).findall("{*}Error"):
                failed.append(_text(err, "Key"))
        return failed

    def list_page(self, prefix: str, delimiter: str | None = "/", max_keys: int = 1000,
                  token: str | None = None, start_after: str | None = None, metadata: bool = False) -> ListPage:
        """One page of ListObjectsV2; ``metadata`` asks for each object's metadata too (a
        server that does not know the extension ignores it: entries then have no ``meta``)."""
        query = {"list-type": "2", "prefix": prefix, "max-keys": str(max_keys), "encoding-type": "url"}
        if metadata:
            query["metadata"] = "true"
        if delimiter:
            query["delimiter"] = delimiter
        if token:
            query["continuation-token"] = token
        if start_after:
            query["start-after"] = start_after
        return _list_page_of(ET.fromstring(self.request("GET", None, query).body))

    def list_all(self, prefix: str, delimiter: str | None = "/", metadata: bool = False) -> Iterator[ListPage]:
        token: str | None = None
        while True:
            page = self.list_page(prefix, delimiter, token=token, metadata=metadata)
            yield page
            if not page.next_token:
                return
            token = page.next_token

    # -- multipart ------------------------------------------------------------------------

    def create_multipart(self, key: str, headers: Mapping[str, str] | None = None) -> str:
        resp = self.request("POST", key, {"uploads": ""}, headers, b"")
        return _text(ET.fromstring(resp.body), "UploadId")

    def upload_part(self, key: str, upload_id: str, number: int, body: Body) -> str:
        resp = self.request("PUT", key, {"partNumber": str(number), "uploadId": upload_id}, body=body)
        return resp.headers.get("etag", "").strip('"')

    def upload_part_copy(self, key: str, upload_id: str, number: int, source: str, start: int, end: int,
                         if_match: str) -> str:
        """A part that is bytes [start, end) of ``source`` as it is while its ETag is ``if_match``."""
        headers = {"x-amz-copy-source": quote(f"/{self.bucket}/{source}", safe="/~"),
                   "x-amz-copy-source-range": f"bytes={start}-{end - 1}",
                   "x-amz-copy-source-if-match": f'"{if_match}"'}
        resp = self.request("PUT", key, {"partNumber": str(number), "uploadId": upload_id}, headers, b"")
        return _text(ET.fromstring(resp.body), "ETag").strip('"')

    def complete_multipart(self, key: str, upload_id: str, etags: list[str]) -> None:
        root = ET.Element("CompleteMultipartUpload")
        for number, etag in enumerate(etags, start=1):
            part = ET.SubElement(root, "Part")
            ET.SubElement(part, "PartNumber").text = str(number)
            ET.SubElement(part, "ETag").text = f'"{etag}"'
        resp = self.request("POST", key, {"uploadId": upload_id}, {"Content-Type": "application/xml"},
                            ET.tostring(root, encoding="utf-8"))
        if b"<Error>" in resp.body[:300]:
            raise _error_of(500, resp.body)

    def abort_multipart(self, key: str, upload_id: str) -> None:
        self.request("DELETE", key, {"uploadId": upload_id}, ok=(200, 204, 404))
