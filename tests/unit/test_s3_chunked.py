"""aws-chunked bodies: AWS's published example, botocore's encoder, and every way to break one.

Signed bodies come from an encoder written here from the AWS documentation, independent of
the decoder under test; unsigned-trailer bodies come from botocore's own AwsChunkedWrapper.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
from collections.abc import Sequence
from typing import Any
from unittest import mock

import pytest
from botocore.httpchecksum import AwsChunkedWrapper, Crc32Checksum, CrtCrc32cChecksum, Sha256Checksum
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgestore.api.s3 import checksums
from edgestore.api.s3.chunked import (
    AwsChunkedDecoder,
    canonical_trailers,
    chunk_signature,
    trailer_signature,
)
from edgestore.api.s3.errors import (
    BadDigest,
    IncompleteBody,
    InvalidArgument,
    InvalidChunkSizeError,
    InvalidRequest,
    MissingContentLength,
    S3Error,
    SignatureDoesNotMatch,
)
from edgestore.api.s3.sigv4 import AuthResult, PayloadMode, derive_signing_key

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
AMZ_DATE = "20130524T000000Z"
SCOPE = "20130524/us-east-1/s3/aws4_request"
SEED = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
EMPTY = hashlib.sha256(b"").hexdigest()


def auth_for(mode: PayloadMode, seed: str = SEED) -> AuthResult:
    key = derive_signing_key(SECRET, "20130524", "us-east-1")
    return AuthResult("AKIAIOSFODNN7EXAMPLE", mode, mode.value, key, SCOPE, seed, AMZ_DATE)


SIGNED = auth_for(PayloadMode.STREAMING_SIGNED)
SIGNED_TRAILER = auth_for(PayloadMode.STREAMING_SIGNED_TRAILER)
UNSIGNED_TRAILER = auth_for(PayloadMode.STREAMING_UNSIGNED_TRAILER)


# --- an independent encoder, straight from the AWS documentation -----------------------------


def _hmac_hex(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def _test_key() -> bytes:
    key = ("AWS4" + SECRET).encode()
    for part in ("20130524", "us-east-1", "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def encode_signed(chunks: Sequence[bytes], trailers: Sequence[tuple[str, str]] | None = None,
                  seed: str = SEED) -> tuple[bytes, list[str]]:
    """The aws-chunked body for ``chunks`` (then the empty chunk), and the signatures used."""
    key = _test_key()
    previous = seed
    out = bytearray()
    signatures = []
    for data in [*chunks, b""]:
        sts = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", AMZ_DATE, SCOPE, previous, EMPTY,
                         hashlib.sha256(data).hexdigest()])
        previous = _hmac_hex(key, sts)
        signatures.append(previous)
        out += f"{len(data):x};chunk-signature={previous}\r\n".encode() + data
        if data:
            out += b"\r\n"
    if trailers is not None:
        block = "".join(f"{name}:{value}\n" for name, value in trailers)
        sts = "\n".join(["AWS4-HMAC-SHA256-TRAILER", AMZ_DATE, SCOPE, previous,
                         hashlib.sha256(block.encode()).hexdigest()])
        for name, value in trailers:
            out += f"{name}:{value}\r\n".encode()
        out += f"x-amz-trailer-signature:{_hmac_hex(key, sts)}\r\n".encode()
    out += b"\r\n"
    return bytes(out), signatures


def encode_unsigned(chunks: Sequence[bytes], trailers: Sequence[tuple[str, str]] = ()) -> bytes:
    out = b"".join(f"{len(c):x}\r\n".encode() + c + b"\r\n" for c in chunks) + b"0\r\n"
    return out + b"".join(f"{n}:{v}\r\n".encode() for n, v in trailers) + b"\r\n"


class Reader:
    """A StreamReader stand-in that hands out at most ``step`` bytes per read."""

    def __init__(self, data: bytes, step: int = 1 << 20) -> None:
        self._data = io.BytesIO(data)
        self._step = step
        self.largest_read = 0

    async def read(self, n: int = -1) -> bytes:
        n = self._step if n < 0 else min(n, self._step)
        self.largest_read = max(self.largest_read, n)
        return self._data.read(n)


def decode(body: bytes, auth: AuthResult, decoded_length: int | None, trailer_names: Sequence[str] = (),
           step: int = 1 << 20, **kwargs: Any) -> tuple[bytes, AwsChunkedDecoder, list[int]]:
    decoder = AwsChunkedDecoder(Reader(body, step), auth, decoded_length, trailer_names, **kwargs)

    async def run() -> tuple[bytes, list[int]]:
        pieces = [piece async for piece in decoder]
        return b"".join(pieces), [len(p) for p in pieces]

    data, sizes = asyncio.run(run())
    return data, decoder, sizes


# --- AWS's published example ----------------------------------------------------------------

AWS_SIGNATURES = [
    "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
    "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
    "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
]
AWS_BODY = (
    b"10000;chunk-signature=" + AWS_SIGNATURES[0].encode() + b"\r\n" + b"a" * 65536 + b"\r\n"
    + b"400;chunk-signature=" + AWS_SIGNATURES[1].encode() + b"\r\n" + b"a" * 1024 + b"\r\n"
    + b"0;chunk-signature=" + AWS_SIGNATURES[2].encode() + b"\r\n\r\n"
)


def test_encoder_reproduces_the_aws_example() -> None:
    body, signatures = encode_signed([b"a" * 65536, b"a" * 1024])
    assert signatures == AWS_SIGNATURES
    assert body == AWS_BODY and len(body) == 66824


@pytest.mark.parametrize("step", [1, 7, 100, 4096, 65537, 1 << 20])
def test_aws_example_decodes(step: int) -> None:
    data, decoder, _ = decode(AWS_BODY, SIGNED, 66560, step=step)
    assert data == b"a" * 66560
    assert decoder.decoded_bytes == 66560 and decoder.trailers == {}


def test_aws_example_without_final_crlf() -> None:
    assert decode(AWS_BODY[:-2], SIGNED, 66560)[0] == b"a" * 66560


def test_chunk_signature_function_matches_aws() -> None:
    key = derive_signing_key(SECRET, "20130524", "us-east-1")
    first = chunk_signature(key, AMZ_DATE, SCOPE, SEED, hashlib.sha256(b"a" * 65536).hexdigest())
    assert first == AWS_SIGNATURES[0]


def test_trailer_signature_matches_aws_vectors() -> None:
    key = derive_signing_key(SECRET, "20130524", "us-east-1")
    # AWS docs, "Signature calculations for trailing headers": a CRC32C trailer.
    previous = "e05ab64fe1dfdbf0b5870abbaabdb063c371d4e96f2767e6934d90529c5ae850"
    canonical = canonical_trailers([("x-amz-checksum-crc32c", "wdBDMA==")])
    assert canonical == "x-amz-checksum-crc32c:wdBDMA==\n"
    assert trailer_signature(key, AMZ_DATE, SCOPE, previous, canonical) == (
        "41e14ac611e27a8bb3d66c3bad6856f209297767d5dd4fc87d8fa9e422e03faf")
    # aws-c-auth's test of three trailers after the AWS chunk example.
    canonical = canonical_trailers([("second", "2nd"), ("First", " 1st "), ("third", "3rd")])
    assert hashlib.sha256(canonical.encode()).hexdigest() == (
        "83d8f190334fb741bc8daf73c891689d320bd8017756bc730c540021ed48001f")
    assert trailer_signature(key, AMZ_DATE, SCOPE, AWS_SIGNATURES[2], canonical) == (
        "df5735bd9f3295cd9386572292562fefc93ba94e80a0a1ddcbd652c4e0a75e6c")


def test_signed_trailer_body_decodes() -> None:
    crc = checksums.new_checksum("crc32c")
    payload = b"x" * 70000
    crc.update(payload)
    trailers = [("x-amz-checksum-crc32c", crc.b64())]
    body, _ = encode_signed([payload[:65536], payload[65536:]], trailers)
    data, decoder, _ = decode(body, SIGNED_TRAILER, len(payload), ["x-amz-checksum-crc32c"], step=333)
    assert data == payload
    assert decoder.trailers == {"x-amz-checksum-crc32c": crc.b64()}
    checksums.verify("crc32c", decoder.trailers["x-amz-checksum-crc32c"], crc)


def test_large_chunks_are_yielded_in_bounded_pieces() -> None:
    payload = bytes(range(256)) * (5 * 4096)  # 5 MiB in one chunk
    body, _ = encode_signed([payload])
    data, _, sizes = decode(body, SIGNED, len(payload), piece_bytes=256 * 1024)
    assert data == payload
    assert max(sizes) <= 256 * 1024 and len(sizes) >= 20


def test_reads_are_bounded() -> None:
    payload = b"z" * (3 << 20)
    body, _ = encode_signed([payload])
    reader = Reader(body, step=1 << 30)
    decoder = AwsChunkedDecoder(reader, SIGNED, len(payload))

    async def run() -> int:
        return sum([len(p) async for p in decoder])

    assert asyncio.run(run()) == len(payload)
    assert reader.largest_read <= 256 * 1024


def test_with_aiohttp_stream_reader() -> None:
    """The real reader the server hands over, fed in small pieces while the decoder waits."""
    from aiohttp.base_protocol import BaseProtocol
    from aiohttp.streams import StreamReader

    async def run(fail: bool) -> bytes:
        loop = asyncio.get_running_loop()
        protocol = BaseProtocol(loop)
        protocol.connection_made(mock.Mock(spec=asyncio.Transport))
        reader = StreamReader(protocol, 2**16, loop=loop)

        async def feed() -> None:
            for start in range(0, len(AWS_BODY) - (500 if fail else 0), 1000):
                reader.feed_data(AWS_BODY[start : start + 1000])
                await asyncio.sleep(0)
            if fail:
                reader.set_exception(ConnectionResetError("peer went away"))
            else:
                reader.feed_eof()

        task = asyncio.create_task(feed())
        try:
            return b"".join([piece async for piece in AwsChunkedDecoder(reader, SIGNED, 66560)])
        finally:
            await task

    assert asyncio.run(run(fail=False)) == b"a" * 66560
    with pytest.raises(ConnectionResetError):  # transport errors are not turned into S3 errors
        asyncio.run(run(fail=True))


# --- botocore's unsigned-trailer encoder -----------------------------------------------------


def botocore_body(payload: bytes, checksum_cls: Any = None, name: str = "x-amz-checksum-crc32",
                  chunk_size: int | None = None) -> bytes:
    wrapper = AwsChunkedWrapper(io.BytesIO(payload), checksum_cls=checksum_cls, checksum_name=name,
                                chunk_size=chunk_size)
    return bytes(wrapper.read())


@pytest.mark.parametrize(("size", "chunk_size"), [(0, None), (5, None), (3 * 1024 * 1024 + 5, None),
                                                   (10000, 1000), (8191, 8192)])
@pytest.mark.parametrize(("checksum_cls", "alg"), [(Crc32Checksum, "crc32"), (CrtCrc32cChecksum, "crc32c"),
                                                   (Sha256Checksum, "sha256")])
def test_botocore_unsigned_trailer(size: int, chunk_size: int | None, checksum_cls: Any, alg: str) -> None:
    payload = bytes(i % 251 for i in range(size))
    name = checksums.header_name(alg)
    body = botocore_body(payload, checksum_cls, name, chunk_size)
    data, decoder, _ = decode(body, UNSIGNED_TRAILER, size, [name], step=4099)
    assert data == payload
    computed = checksums.new_checksum(alg)
    computed.update(data)
    checksums.verify(alg, decoder.trailers[name], computed)


def test_botocore_unsigned_without_checksum_or_length() -> None:
    body = botocore_body(b"hello world", None)
    assert body.endswith(b"0\r\n\r\n")
    assert decode(body, UNSIGNED_TRAILER, None)[0] == b"hello world"


def test_botocore_trailer_with_wrong_checksum_is_bad_digest() -> None:
    body = botocore_body(b"hello", Crc32Checksum).replace(b"hello", b"jello")
    data, decoder, _ = decode(body, UNSIGNED_TRAILER, 5, ["x-amz-checksum-crc32"])
    computed = checksums.new_checksum("crc32")
    computed.update(data)
    with pytest.raises(BadDigest):
        checksums.verify("crc32", decoder.trailers["x-amz-checksum-crc32"], computed)


def test_malformed_trailer_checksum_value() -> None:
    body = encode_unsigned([b"hello"], [("x-amz-checksum-crc32", "not-base64!")])
    _, decoder, _ = decode(body, UNSIGNED_TRAILER, 5, ["x-amz-checksum-crc32"])
    with pytest.raises(InvalidRequest, match="x-amz-checksum-crc32 header is invalid"):
        checksums.verify("crc32", decoder.trailers["x-amz-checksum-crc32"], b"\0\0\0\0")


def test_from_headers() -> None:
    body = botocore_body(b"abc", Crc32Checksum)
    headers = {"X-Amz-Decoded-Content-Length": "3", "X-Amz-Trailer": "x-amz-checksum-crc32"}
    decoder = AwsChunkedDecoder.from_headers(Reader(body), UNSIGNED_TRAILER, headers)

    async def run() -> bytes:
        return b"".join([p async for p in decoder])

    assert asyncio.run(run()) == b"abc" and "x-amz-checksum-crc32" in decoder.trailers
    with pytest.raises(MissingContentLength):
        AwsChunkedDecoder.from_headers(Reader(b""), SIGNED, {})
    with pytest.raises(InvalidArgument):
        AwsChunkedDecoder.from_headers(Reader(b""), UNSIGNED_TRAILER, {"x-amz-decoded-content-length": "-1"})
    AwsChunkedDecoder.from_headers(Reader(b""), UNSIGNED_TRAILER, {})


def test_refuses_non_streaming_modes_and_second_iteration() -> None:
    with pytest.raises(ValueError):
        AwsChunkedDecoder(Reader(b""), auth_for(PayloadMode.UNSIGNED), None)
    _, decoder, _ = decode(AWS_BODY, SIGNED, 66560)


    async def again() -> None:
        async for _ in decoder.chunks():
            pass

    with pytest.raises(RuntimeError):
        asyncio.run(again())


# --- refusals --------------------------------------------------------------------------------


def expect(error: type[S3Error], body: bytes, auth: AuthResult = SIGNED, decoded_length: int | None = 66560,
           trailer_names: Sequence[str] = (), **kwargs: Any) -> S3Error:
    with pytest.raises(error) as info:
        decode(body, auth, decoded_length, trailer_names, step=1000, **kwargs)
    return info.value


def test_every_truncation_of_the_aws_example_is_refused() -> None:
    cut_points = set(range(0, 200)) | set(range(65500, 65800)) | set(range(len(AWS_BODY) - 200, len(AWS_BODY) - 2))
    for cut in sorted(cut_points):
        with pytest.raises((IncompleteBody, InvalidRequest)):
            decode(AWS_BODY[:cut], SIGNED, 66560, step=4096)


def test_truncated_unsigned_body() -> None:
    body = encode_unsigned([b"hello"], [("x-amz-checksum-crc32", "NhCmhg==")])
    for cut in range(len(body) - 2):
        with pytest.raises((IncompleteBody, InvalidRequest)):
            decode(body[:cut], UNSIGNED_TRAILER, None, ["x-amz-checksum-crc32"])


def test_bad_chunk_signature() -> None:
    expect(SignatureDoesNotMatch, AWS_BODY.replace(AWS_SIGNATURES[1].encode(), b"0" * 64))
    expect(SignatureDoesNotMatch, AWS_BODY.replace(AWS_SIGNATURES[2].encode(), AWS_SIGNATURES[1].encode()))


def test_tampered_data_and_wrong_seed() -> None:
    tampered = bytearray(AWS_BODY)
    tampered[66000] = ord("b")  # inside the second chunk
    expect(SignatureDoesNotMatch, bytes(tampered))
    expect(SignatureDoesNotMatch, AWS_BODY, auth_for(PayloadMode.STREAMING_SIGNED, seed="1" * 64))


def test_reordered_chunks_are_refused() -> None:
    body, _ = encode_signed([b"a" * 9000, b"b" * 9000])
    first, second = body.split(b"\r\n2328;")[0], b"2328;" + body.split(b"\r\n2328;")[1].split(b"\r\n0;")[0]
    swapped = second + b"\r\n" + first + b"\r\n0;" + body.split(b"\r\n0;")[1]
    expect(SignatureDoesNotMatch, swapped, decoded_length=18000)


def test_upper_case_signature_hex_is_accepted() -> None:
    body = AWS_BODY.replace(AWS_SIGNATURES[0].encode(), AWS_SIGNATURES[0].upper().encode())
    assert decode(body, SIGNED, 66560)[0] == b"a" * 66560


def test_wrong_decoded_length() -> None:
    error = expect(IncompleteBody, AWS_BODY, decoded_length=66561)
    assert "66560" in error.message
    expect(IncompleteBody, AWS_BODY, decoded_length=66559)
    expect(IncompleteBody, AWS_BODY, decoded_length=0)


@pytest.mark.parametrize(("old", "new"), [
    (b"10000;", b"1000g;"),
    (b"10000;", b"-10000;"),
    (b"10000;", b"0x10000;"),
    (b"10000;", b"10000 ;"),
    (b"400;chunk-signature=", b"400;chunk-signatur="),
    (b"400;chunk-signature=", b"400;chunk-signature=ab"),
    (b"\r\n400;", b"\n400;"),
    (b"\r\n400;", b"XX400;"),
    (b"\r\n0;chunk", b"\r\n00000000000000000;chunk"),
])
def test_malformed_framing(old: bytes, new: bytes) -> None:
    assert old in AWS_BODY
    expect(InvalidRequest, AWS_BODY.replace(old, new, 1))


def test_oversize_line_is_refused_without_reading_it_all() -> None:
    body = b"1" * 100_000 + b"\r\n"
    reader = Reader(body, step=1024)
    decoder = AwsChunkedDecoder(reader, UNSIGNED_TRAILER, None)

    async def run() -> None:
        async for _ in decoder:
            pass

    with pytest.raises(InvalidRequest, match="longer than"):
        asyncio.run(run())
    assert reader._data.tell() < 80_000
    expect(InvalidRequest, encode_unsigned([b"x"], [("x-amz-meta-a", "v" * 5000)]), UNSIGNED_TRAILER, None,
           ["x-amz-meta-a"])


def test_trailing_garbage_is_refused() -> None:
    expect(InvalidRequest, AWS_BODY + b"x")
    expect(InvalidRequest, AWS_BODY + b"\r\n")


def test_small_non_final_signed_chunk() -> None:
    body, _ = encode_signed([b"a" * 8191, b"a" * 10])
    error = expect(InvalidChunkSizeError, body, decoded_length=8201)
    assert error.status == 403 and error.fields["BadChunkSize"] == "8191"
    body, _ = encode_signed([b"a" * 8192, b"a" * 10])  # the last data chunk may be small
    assert decode(body, SIGNED, 8202)[0] == b"a" * 8202
    body = encode_unsigned([b"a" * 10, b"b" * 10])  # unsigned chunks have no minimum
    assert decode(body, UNSIGNED_TRAILER, 20)[0] == b"a" * 10 + b"b" * 10


def test_bad_trailer_signature() -> None:
    body, _ = encode_signed([b"abc"], [("x-amz-checksum-crc32", "NSRBwg==")])
    expect(SignatureDoesNotMatch, body.replace(b"NSRBwg==", b"AAAAAA=="), SIGNED_TRAILER, 3,
           ["x-amz-checksum-crc32"])
    no_signature = b"\r\n".join(line for line in body.split(b"\r\n") if not line.startswith(b"x-amz-trailer-sig"))
    expect(SignatureDoesNotMatch, no_signature, SIGNED_TRAILER, 3, ["x-amz-checksum-crc32"])
    assert decode(body, SIGNED_TRAILER, 3, ["x-amz-checksum-crc32"])[1].trailers == {
        "x-amz-checksum-crc32": "NSRBwg=="}


def test_trailer_declarations_are_enforced() -> None:
    body = encode_unsigned([b"abc"], [("x-amz-checksum-crc32", "NSRBwg==")])
    expect(IncompleteBody, encode_unsigned([b"abc"]), UNSIGNED_TRAILER, 3, ["x-amz-checksum-crc32"])
    expect(InvalidRequest, body, UNSIGNED_TRAILER, 3, [])
    expect(InvalidRequest, body, UNSIGNED_TRAILER, 3, ["x-amz-checksum-sha1"])
    doubled = encode_unsigned([b"abc"], [("x-amz-checksum-crc32", "NSRBwg==")] * 2)
    expect(InvalidRequest, doubled, UNSIGNED_TRAILER, 3, ["x-amz-checksum-crc32"])
    expect(InvalidRequest, encode_unsigned([b"abc"], [("no colon", "")]).replace(b"no colon:", b"nocolon"),
           UNSIGNED_TRAILER, 3)
    signed_no_trailers, _ = encode_signed([b"abc"], [("x-amz-checksum-crc32", "NSRBwg==")])
    expect(InvalidRequest, signed_no_trailers, SIGNED, 3, ["x-amz-checksum-crc32"])


def test_too_many_trailers() -> None:
    trailers = [(f"x-amz-meta-{i}", "v") for i in range(20)]
    expect(InvalidRequest, encode_unsigned([b"a"], trailers), UNSIGNED_TRAILER, 1, [n for n, _ in trailers])


# --- mutated bodies never escape as anything but an S3Error ----------------------------------

_SMALL_SIGNED, _ = encode_signed([b"q" * 8192, b"r" * 100], [("x-amz-checksum-crc32", "AAAAAA==")])
_SMALL_UNSIGNED = encode_unsigned([b"q" * 50, b"r" * 3], [("x-amz-checksum-crc32", "AAAAAA==")])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(signed=st.booleans(), edits=st.lists(st.tuples(st.integers(0, 10**6), st.binary(max_size=3),
                                                      st.integers(0, 3)), min_size=1, max_size=4),
       step=st.integers(1, 9000), length_known=st.booleans())
def test_fuzz_mutated_bodies(signed: bool, edits: list[tuple[int, bytes, int]], step: int,
                             length_known: bool) -> None:
    original, payload_size = (_SMALL_SIGNED, 8292) if signed else (_SMALL_UNSIGNED, 53)
    body = bytearray(original)
    for position, insert, delete in edits:
        at = position % (len(body) + 1)
        body[at:at + delete] = insert
    auth = SIGNED_TRAILER if signed else UNSIGNED_TRAILER
    try:
        data, _, _ = decode(bytes(body), auth, payload_size if length_known else None,
                            ["x-amz-checksum-crc32"], step=step)
    except S3Error:
        return
    if signed:  # a signed body either decodes to exactly what was signed or is refused
        assert data == b"q" * 8192 + b"r" * 100
