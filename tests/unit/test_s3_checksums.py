"""S3 additional checksums: known-answer vectors, agreement with botocore, request parsing."""

from __future__ import annotations

import base64
import hashlib
import itertools
import os
import zlib

import pytest
from botocore import httpchecksum
from hypothesis import given, settings
from hypothesis import strategies as st

from edgestore.api.s3 import checksums
from edgestore.api.s3.checksums import (
    ALGORITHMS,
    RequestedChecksum,
    decode_expected,
    header_name,
    new_checksum,
    parse_requested,
    verify,
)
from edgestore.api.s3.errors import BadDigest, InvalidRequest
from edgestore.api.s3.errors import NotImplemented as S3NotImplemented

CHECK_INPUT = b"123456789"

# Check values from the CRC catalogue (CRC-32/ISO-HDLC, CRC-32/ISCSI, CRC-64/NVME) and FIPS 180.
VECTORS = {
    "crc32": (0xCBF43926).to_bytes(4, "big"),
    "crc32c": (0xE3069283).to_bytes(4, "big"),
    "crc64nvme": (0xAE8B14860A799888).to_bytes(8, "big"),
    "sha1": bytes.fromhex("f7c3bc1d808e04732adf679965ccc34ca7ae3441"),
    "sha256": bytes.fromhex("15e2b0d3c33891ebb0f1ef609ec419420c20e320ce94c65fbc8c3312448eb225"),
}


def botocore_b64(name: str, data: bytes) -> str:
    """What botocore (with awscrt, as installed for the tests) puts in x-amz-checksum-<name>."""
    classes = {
        "crc32": httpchecksum.Crc32Checksum,
        "crc32c": httpchecksum.CrtCrc32cChecksum,
        "crc64nvme": httpchecksum.CrtCrc64NvmeChecksum,
        "sha1": httpchecksum.Sha1Checksum,
        "sha256": httpchecksum.Sha256Checksum,
    }
    checksum = classes[name]()
    checksum.update(data)
    return str(checksum.b64digest())


def test_algorithms_are_the_five_s3_names() -> None:
    assert ALGORITHMS == ("crc32", "crc32c", "sha1", "sha256", "crc64nvme")
    assert set(VECTORS) == set(ALGORITHMS)


@pytest.mark.parametrize("name", ALGORITHMS)
def test_check_values(name: str) -> None:
    checksum = new_checksum(name)
    checksum.update(CHECK_INPUT)
    assert checksum.digest() == VECTORS[name]
    assert checksum.b64() == base64.b64encode(VECTORS[name]).decode()
    assert len(checksum.digest()) == checksums.digest_size(name)


@pytest.mark.parametrize("name", ALGORITHMS)
def test_empty_input_matches_botocore(name: str) -> None:
    assert new_checksum(name).b64() == botocore_b64(name, b"")


@pytest.mark.parametrize("name", ALGORITHMS)
def test_upper_case_name_accepted(name: str) -> None:
    checksum = new_checksum(name.upper())
    checksum.update(CHECK_INPUT)
    assert checksum.digest() == VECTORS[name]


def test_unknown_algorithm_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        new_checksum("md5")


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=3000), cuts=st.lists(st.integers(0, 3000), max_size=6))
def test_incremental_equals_botocore_one_shot(data: bytes, cuts: list[int]) -> None:
    bounds = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    for name in ALGORITHMS:
        checksum = new_checksum(name)
        for start, end in itertools.pairwise(bounds):
            checksum.update(memoryview(data)[start:end])
        assert checksum.b64() == botocore_b64(name, data), name


def test_large_input_matches_botocore() -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    for name in ALGORITHMS:
        checksum = new_checksum(name)
        for start in range(0, len(data), 256 * 1024):
            checksum.update(data[start : start + 256 * 1024])
        assert checksum.b64() == botocore_b64(name, data), name


@settings(max_examples=40, deadline=None)
@given(data=st.binary(max_size=600), split=st.integers(0, 600))
def test_pure_python_fallback_matches_awscrt(data: bytes, split: int) -> None:
    from awscrt import checksums as crt

    split = min(split, len(data))
    for pure, fast in ((checksums._pure_crc32c, crt.crc32c), (checksums._pure_crc64nvme, crt.crc64nvme)):
        assert pure(data, 0) == fast(data, 0)
        assert pure(data[split:], pure(data[:split], 0)) == fast(data, 0)


def test_pure_python_fallback_check_values() -> None:
    assert checksums._pure_crc32c(CHECK_INPUT, 0) == 0xE3069283
    assert checksums._pure_crc64nvme(CHECK_INPUT, 0) == 0xAE8B14860A799888


def test_fast_implementation_in_use() -> None:
    assert checksums.have_fast_crc(), "awscrt is expected in the test environment"
    assert zlib.crc32(CHECK_INPUT) == 0xCBF43926


def test_header_name() -> None:
    assert header_name("crc32") == "x-amz-checksum-crc32"
    assert header_name("CRC64NVME") == "x-amz-checksum-crc64nvme"


# --- verify / decode_expected -------------------------------------------------------------


@pytest.mark.parametrize("name", ALGORITHMS)
def test_verify_accepts_matching_value(name: str) -> None:
    checksum = new_checksum(name)
    checksum.update(CHECK_INPUT)
    verify(name, base64.b64encode(VECTORS[name]).decode(), checksum)
    verify(name, base64.b64encode(VECTORS[name]).decode(), checksum.digest())


@pytest.mark.parametrize("name", ALGORITHMS)
def test_verify_mismatch_is_bad_digest(name: str) -> None:
    wrong = bytes(len(VECTORS[name]))
    with pytest.raises(BadDigest) as info:
        verify(name, base64.b64encode(wrong).decode(), VECTORS[name])
    assert info.value.status == 400
    assert name.upper() in info.value.message


@pytest.mark.parametrize(
    "value",
    ["", "!!!!", "AAAA", "AAAAAAAAAAA=", "AAAAAA", "AAAAAA==AAAA", "ÄÄÄÄ", "AA AAAA==", "A" * 400],
)
def test_malformed_value_is_invalid_request(value: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        decode_expected("crc32", value)
    assert info.value.message == "Value for x-amz-checksum-crc32 header is invalid."


def test_wrong_length_for_algorithm_is_invalid_request() -> None:
    crc64_value = base64.b64encode(VECTORS["crc64nvme"]).decode()
    with pytest.raises(InvalidRequest):
        verify("crc32", crc64_value, VECTORS["crc32"])


# --- parse_requested ----------------------------------------------------------------------


def test_no_checksum_declared() -> None:
    assert parse_requested({"Content-Type": "text/plain", "x-amz-checksum-mode": "ENABLED"}) is None
    assert parse_requested({"x-amz-checksum-type": "FULL_OBJECT", "x-amz-checksum-algorithm": "CRC32"}) is None


def test_header_checksum_as_botocore_sends_it() -> None:
    headers = {"x-amz-checksum-crc32": "NhCmhg==", "x-amz-sdk-checksum-algorithm": "CRC32"}
    assert parse_requested(headers) == RequestedChecksum("crc32", "header", "NhCmhg==")


def test_trailer_checksum_as_botocore_sends_it() -> None:
    headers = {"X-Amz-Trailer": "x-amz-checksum-crc32", "x-amz-sdk-checksum-algorithm": "CRC32"}
    requested = parse_requested(headers)
    assert requested == RequestedChecksum("crc32", "trailer")
    assert requested is not None and requested.header == "x-amz-checksum-crc32"


def test_header_case_insensitive() -> None:
    value = base64.b64encode(VECTORS["sha256"]).decode()
    assert parse_requested({"X-Amz-Checksum-SHA256": value}) == RequestedChecksum("sha256", "header", value)


def test_two_checksums_refused() -> None:
    headers = {"x-amz-checksum-crc32": "NhCmhg==", "x-amz-checksum-crc32c": "NhCmhg=="}
    with pytest.raises(InvalidRequest, match="Multiple checksum"):
        parse_requested(headers)
    with pytest.raises(InvalidRequest, match="Multiple checksum"):
        parse_requested({"x-amz-checksum-crc32": "NhCmhg==", "x-amz-trailer": "x-amz-checksum-crc32c"})


def test_malformed_header_value_refused_before_the_body() -> None:
    with pytest.raises(InvalidRequest, match="x-amz-checksum-crc32c header is invalid"):
        parse_requested({"x-amz-checksum-crc32c": "not base64"})


def test_unknown_trailer_refused() -> None:
    with pytest.raises(InvalidRequest, match="x-amz-trailer"):
        parse_requested({"x-amz-trailer": "x-amz-meta-foo"})


def test_sdk_algorithm_without_checksum_refused() -> None:
    with pytest.raises(InvalidRequest, match="x-amz-sdk-checksum-algorithm specified"):
        parse_requested({"x-amz-sdk-checksum-algorithm": "CRC32"})
    with pytest.raises(InvalidRequest, match="x-amz-sdk-checksum-algorithm specified"):
        parse_requested({"x-amz-sdk-checksum-algorithm": "SHA1", "x-amz-checksum-crc32": "NhCmhg=="})


def test_sdk_algorithm_unknown_refused() -> None:
    with pytest.raises(InvalidRequest, match="x-amz-sdk-checksum-algorithm header is invalid"):
        parse_requested({"x-amz-sdk-checksum-algorithm": "ADLER32"})


@pytest.mark.parametrize("alg", ["sha512", "xxhash64", "xxhash3", "xxhash128"])
def test_newer_aws_algorithms_refused_not_ignored(alg: str) -> None:
    with pytest.raises(S3NotImplemented):
        parse_requested({f"x-amz-checksum-{alg}": "AAAA"})
    with pytest.raises(S3NotImplemented):
        parse_requested({"x-amz-trailer": f"x-amz-checksum-{alg}"})


def test_sha256_digest_is_hashlib() -> None:
    checksum = new_checksum("sha256")
    checksum.update(b"abc")
    assert checksum.digest() == hashlib.sha256(b"abc").digest()
