"""Raw S3 requests for tests that must send what no well-behaved client would:
signed by botocore's own SigV4 signer, sent over a plain socket, byte for byte."""

from __future__ import annotations

import hashlib
import hmac
import socket
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from edgestore.sigv4_client import sign_headers


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def code(self) -> str:
        """The S3 error code in the body, if any."""
        text = self.body.decode(errors="replace")
        start = text.find("<Code>")
        return text[start + 6:text.find("</Code>")] if start >= 0 else ""


def sign(endpoint: str, access_key: str, secret_key: str, method: str, path: str,
         headers: dict[str, str] | None = None, payload_hash: str | None = None,
         body: bytes = b"") -> dict[str, str]:
    """Headers botocore's own signer sends for this request and body."""
    if payload_hash is not None:
        return sign_claiming(endpoint, access_key, secret_key, method, path, payload_hash, headers)
    request = AWSRequest(method=method, url=endpoint.rstrip("/") + path, headers=dict(headers or {}),
                         data=body)
    S3SigV4Auth(Credentials(access_key, secret_key), "s3", "us-east-1").add_auth(request)
    return {k: v for k, v in request.headers.items()}


def sign_claiming(endpoint: str, access_key: str, secret_key: str, method: str, path: str,
                  payload_hash: str, headers: dict[str, str] | None = None,
                  now: datetime | None = None) -> dict[str, str]:
    """A valid SigV4 signature over a payload hash of our choosing (which botocore's signer
    would recompute from the body) or a time of our choosing: to send what a client lies about."""
    headers = dict(headers or {})
    headers.update(sign_headers(method, endpoint.rstrip("/") + path, headers, payload_hash,
                                access_key, secret_key, now=now))
    return headers


def send(endpoint: str, method: str, path: str, headers: dict[str, str], body: bytes = b"",
         close_after_body: bool = False, timeout_s: float = 30.0) -> RawResponse:
    """Send one request exactly as given; read one response."""
    parts = urlsplit(endpoint)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    given_host = next((v for k, v in headers.items() if k.lower() == "host"), f"{host}:{port}")
    lines = [f"{method} {path} HTTP/1.1", f"Host: {given_host}"]
    lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() != "host"]
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.sendall(raw)
        if close_after_body:
            sock.shutdown(socket.SHUT_WR)
        return _read_response(sock)


def _read_response(sock: socket.socket) -> RawResponse:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed before a response: {data!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return RawResponse(int(status_line.split()[1]), headers, rest[:length])


# -- aws-chunked bodies, as clients frame them ---------------------------------------------

def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def signing_key(secret_key: str, date: str, region: str = "us-east-1") -> bytes:
    """SigV4's derived key, from the AWS documentation's recipe."""
    key = _hmac(("AWS4" + secret_key).encode(), date)
    for part in (region, "s3", "aws4_request"):
        key = _hmac(key, part)
    return key


def aws_chunked_signed(body: bytes, chunk_size: int, headers: dict[str, str], secret_key: str,
                       trailer: tuple[str, str] | None = None) -> bytes:
    """A STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER] body: every chunk signed, chained from
    the seed signature of the request's Authorization header (AWS "chunked upload" docs)."""
    lower = {k.lower(): v for k, v in headers.items()}
    authorization = lower["authorization"]
    previous = authorization.rsplit("Signature=", 1)[1].strip()
    amz_date = lower["x-amz-date"]
    credential = authorization.split("Credential=", 1)[1].split(",", 1)[0]
    scope = credential.split("/", 1)[1]
    key = signing_key(secret_key, scope.split("/")[0], scope.split("/")[1])
    empty = hashlib.sha256(b"").hexdigest()
    out = bytearray()
    pieces = [body[i:i + chunk_size] for i in range(0, len(body), chunk_size)] + [b""]
    for piece in pieces:
        to_sign = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, previous, empty,
                             hashlib.sha256(piece).hexdigest()])
        previous = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        out += f"{len(piece):x};chunk-signature={previous}\r\n".encode() + piece
        if piece:
            out += b"\r\n"
    if trailer is not None:
        name, value = trailer
        canonical = f"{name}:{value}\n"
        to_sign = "\n".join(["AWS4-HMAC-SHA256-TRAILER", amz_date, scope, previous,
                             hashlib.sha256(canonical.encode()).hexdigest()])
        trailer_sig = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        out += f"{name}:{value}\r\nx-amz-trailer-signature:{trailer_sig}\r\n".encode()
    out += b"\r\n"
    return bytes(out)


def aws_chunked_unsigned_by_botocore(body: bytes, algorithm: str = "crc32", chunk_size: int = 65536) -> bytes:
    """The STREAMING-UNSIGNED-PAYLOAD-TRAILER body botocore itself produces over HTTPS."""
    import io

    from botocore.httpchecksum import _CHECKSUM_CLS, AwsChunkedWrapper

    wrapper = AwsChunkedWrapper(io.BytesIO(body), checksum_cls=_CHECKSUM_CLS[algorithm],
                                checksum_name=f"x-amz-checksum-{algorithm}", chunk_size=chunk_size)
    return wrapper.read()
