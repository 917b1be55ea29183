"""Swift large objects (SLO and DLO) and multi-range GETs against a real cluster: raw
requests for the protocol's edges, python-swiftclient's Connection and SwiftService for
segmented uploads, the `swift` command line, and S3 reading what Swift wrote."""

from __future__ import annotations

import base64
import email.parser
import email.policy
import hashlib
import http.client
import json
import os
import subprocess
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import pytest
from clusterlib import LocalCluster

swiftclient = pytest.importorskip("swiftclient")
import test_swift_client  # noqa: E402
from swiftclient.client import ClientException, Connection  # noqa: E402
from swiftclient.service import SwiftService, SwiftUploadObject  # noqa: E402

conn = test_swift_client.conn  # the same module-scoped swiftclient Connection fixture
status = test_swift_client.status

TAG = os.getpid()
KIB = 1024


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.fixture
def container(conn: Connection, request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"lo{TAG}-{request.node.name[:40]}".replace("[", "-").replace("]", "")
    conn.put_container(name)
    conn.put_container(name + "_segments")
    yield name


def put_segments(conn: Connection, container: str, sizes: list[int], prefix: str = "seg/") -> list[tuple[str, bytes]]:
    """Segments of random bytes in <container>_segments: [(path, data)]."""
    out = []
    for i, size in enumerate(sizes):
        data = os.urandom(size)
        conn.put_object(container + "_segments", f"{prefix}{i:04d}", data)
        out.append((f"/{container}_segments/{prefix}{i:04d}", data))
    return out


def put_slo(conn: Connection, container: str, name: str, segments: list[tuple[str, bytes]],
            **headers: str) -> dict[str, Any]:
    manifest = [{"path": path, "etag": md5(data), "size_bytes": len(data)} for path, data in segments]
    response: dict[str, Any] = {}
    conn.put_object(container, name, json.dumps(manifest), query_string="multipart-manifest=put",
                    headers=headers, response_dict=response)
    return response


def slo_error(conn: Connection, container: str, name: str, manifest: Any,
              headers: dict[str, str] | None = None) -> tuple[int, str]:
    with pytest.raises(ClientException) as exc:
        conn.put_object(container, name, manifest if isinstance(manifest, (str, bytes)) else json.dumps(manifest),
                        query_string="multipart-manifest=put", headers=headers or {})
    body = exc.value.http_response_content
    return status(exc), body.decode() if isinstance(body, bytes) else str(body)


def raw_get(conn: Connection, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes, bool]:
    """GET with http.client: (status, headers, body read, whether the body was cut short)."""
    url, token = conn.get_auth()
    parts = urlsplit(url)
    client = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
    try:
        client.request("GET", parts.path + path, headers={"X-Auth-Token": token, **headers})
        response = client.getresponse()
        try:
            body, cut = response.read(), False
        except http.client.IncompleteRead as exc:
            body, cut = exc.partial, True
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body, cut
    finally:
        client.close()


def byteranges(headers: dict[str, str], body: bytes) -> list[tuple[str, bytes]]:
    """(Content-Range, bytes) of each part of a multipart/byteranges body."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + headers["content-type"].encode() + b"\r\n\r\n" + body)
    assert message.is_multipart()
    return [(str(part["Content-Range"]), part.get_payload(decode=True)) for part in message.iter_parts()]


# -- SLO -------------------------------------------------------------------------------------

def test_slo_assembles_segments_with_swifts_etag(conn: Connection, container: str) -> None:
    segments = put_segments(conn, container, [1024 * KIB + 7, 300 * KIB, 5])
    whole = b"".join(data for _, data in segments)
    expected = md5("".join(md5(data) for _, data in segments).encode())
    response = put_slo(conn, container, "big.bin", segments)
    assert response["status"] == 201 and response["headers"]["etag"] == f'"{expected}"'
    head = conn.head_object(container, "big.bin")
    assert head["etag"] == f'"{expected}"' and int(head["content-length"]) == len(whole)
    assert head["x-static-large-object"] == "True"
    headers, body = conn.get_object(container, "big.bin")
    assert body == whole and headers["etag"] == f'"{expected}"'
    _, chunks = conn.get_object(container, "big.bin", resp_chunk_size=64 * KIB)
    assert md5(b"".join(chunks)) == md5(whole)
    # Listed with the size a GET returns, as Swift lists an SLO.
    assert [(o["name"], o["bytes"]) for o in conn.get_container(container)[1]] == [("big.bin", len(whole))]


def test_slo_etag_and_size_may_be_null_and_are_resolved(conn: Connection, container: str) -> None:
    segments = put_segments(conn, container, [20 * KIB, 30 * KIB])
    manifest = [{"path": segments[0][0], "etag": None, "size_bytes": None}, {"path": segments[1][0]}]
    conn.put_object(container, "m", json.dumps(manifest), query_string="multipart-manifest=put")
    _, stored = conn.get_object(container, "m", query_string="multipart-manifest=get")
    entries = json.loads(stored)
    assert [(e["name"], e["hash"], e["bytes"]) for e in entries] == [
        (path, md5(data), len(data)) for path, data in segments]
    assert conn.get_object(container, "m")[1] == segments[0][1] + segments[1][1]


def test_slo_ranges_and_multirange_cross_segment_boundaries(conn: Connection, container: str) -> None:
    segments = put_segments(conn, container, [100, 1500 * KIB, 50])
    whole = b"".join(data for _, data in segments)
    put_slo(conn, container, "r", segments)
    size = len(whole)
    for first, last in [(90, 109), (0, 99), (100, 100), (size - 60, size - 1), (50, size - 10)]:
        headers, part = conn.get_object(container, "r", headers={"Range": f"bytes={first}-{last}"})
        assert part == whole[first:last + 1], (first, last)
        assert headers["content-range"] == f"bytes {first}-{last}/{size}"
    assert conn.get_object(container, "r", headers={"Range": "bytes=-55"})[1] == whole[-55:]
    code, headers, body, cut = raw_get(conn, f"/{container}/r", {"Range": "bytes=0-9,95-104,-5"})
    assert code == 206 and not cut and headers["content-type"].startswith("multipart/byteranges;boundary=")
    assert int(headers["content-length"]) == len(body)
    assert byteranges(headers, body) == [
        (f"bytes 0-9/{size}", whole[:10]), (f"bytes 95-104/{size}", whole[95:105]),
        (f"bytes {size - 5}-{size - 1}/{size}", whole[-5:])]
    code, headers, _, _ = raw_get(conn, f"/{container}/r", {"Range": f"bytes={size}-"})
    assert code == 416 and headers["content-range"] == f"bytes */{size}"


def test_slo_conditional_headers_use_the_large_object_etag(conn: Connection, container: str) -> None:
    segments = put_segments(conn, container, [10, 20])
    etag = put_slo(conn, container, "c", segments)["headers"]["etag"]
    manifest_md5 = conn.head_object(container, "c")["x-manifest-etag"]
    assert conn.get_object(container, "c", headers={"If-Match": etag})[1] == segments[0][1] + segments[1][1]
    for headers, expected in [({"If-None-Match": etag}, 304), ({"If-Match": manifest_md5}, 412)]:
        with pytest.raises(ClientException) as exc:
            conn.get_object(container, "c", headers=headers)
        assert status(exc) == expected


def test_slo_manifest_get_and_raw_format_round_trip(conn: Connection, container: str) -> None:
    segments = put_segments(conn, container, [10, 20])
    etag = put_slo(conn, container, "m", segments, **{"Content-Type": "text/x-big"})["headers"]["etag"]
    headers, body = conn.get_object(container, "m", query_string="multipart-manifest=get")
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert headers["etag"] == md5(body) and headers["x-static-large-object"] == "True"
    assert {"name", "hash", "bytes", "content_type", "last_modified"} <= set(json.loads(body)[0])
    headers, raw = conn.get_object(container, "m", query_string="multipart-manifest=get&format=raw")
    assert headers["content-type"] == "text/x-big" and headers["etag"] == md5(raw)
    assert json.loads(raw) == [{"path": p, "etag": md5(d), "size_bytes": len(d)} for p, d in segments]
    response: dict[str, Any] = {}
    conn.put_object(container, "again", raw, query_string="multipart-manifest=put", response_dict=response)
    assert response["headers"]["etag"] == etag


def test_slo_segment_ranges_and_inline_data(conn: Connection, container: str) -> None:
    (path, data), = put_segments(conn, container, [2000])
    manifest = [{"path": path, "range": "10-19"}, {"data": base64.b64encode(b"--inline--").decode()},
                {"path": path, "range": "-5", "etag": md5(data), "size_bytes": 2000}, {"path": path, "range": "0-"}]
    response: dict[str, Any] = {}
    conn.put_object(container, "mix", json.dumps(manifest), query_string="multipart-manifest=put",
                    response_dict=response)
    tag = md5(data)
    expected = md5(f"{tag}:10-19;{md5(b'--inline--')}{tag}:1995-1999;{tag}".encode())
    assert response["headers"]["etag"] == f'"{expected}"'
    headers, body = conn.get_object(container, "mix")
    assert body == data[10:20] + b"--inline--" + data[-5:] + data
    assert conn.get_object(container, "mix", headers={"Range": "bytes=5-24"})[1] == body[5:25]


def test_slo_validation_errors_list_every_problem_and_store_nothing(conn: Connection, container: str) -> None:
    segments = put_segments(conn, container, [10, 20, 30])
    manifest = [{"path": segments[0][0], "etag": "0" * 32, "size_bytes": 10},
                {"path": segments[1][0], "etag": md5(segments[1][1]), "size_bytes": 21},
                {"path": f"/{container}_segments/nope", "etag": None, "size_bytes": None},
                {"path": segments[2][0]}]
    code, body = slo_error(conn, container, "bad", manifest)
    assert code == 400
    assert body.splitlines() == ["Errors:", f"/{container}_segments/seg/0000, Etag Mismatch",
                                 f"/{container}_segments/seg/0001, Size Mismatch",
                                 f"/{container}_segments/nope, 404 Not Found"]
    code, body = slo_error(conn, container, "bad", manifest, {"Accept": "application/json"})
    assert code == 400 and len(json.loads(body)["Errors"]) == 3
    assert slo_error(conn, container, "bad", "{not json")[1] == "Manifest must be valid JSON.\n"
    assert slo_error(conn, container, "bad", {"path": "/a/b"})[1] == "Manifest must be a list.\n"
    entries = [{"path": segments[0][0], "size_bytes": 0}, {"path": "nocontainer"}, {"path": f"/{container}/bad"},
               {"etag": "x"}, {"path": "/a/b", "x": 1}]
    code, body = slo_error(conn, container, "bad", entries)
    assert code == 400 and body.splitlines() == [
        "Index 0: too small; each segment must be at least 1 byte.",
        "Index 1: path does not refer to an object. Path must be of the form /container/object.",
        "Index 2: manifest must not include itself as a segment",
        "Index 3: expected keys to include one of 'data' or 'path'",
        'Index 4: extraneous keys "x"']
    code, body = slo_error(conn, container, "bad", [{"path": segments[0][0], "range": "5-1"}])
    assert (code, body) == (400, "Index 0: invalid range\n")
    code, body = slo_error(conn, container, "bad", [{"path": segments[0][0], "range": "50-"}])
    assert code == 400 and body.splitlines()[1] == f"{segments[0][0]}, Unsatisfiable Range"
    code, body = slo_error(conn, container, "bad", [{"path": "/c/o"}] * 1001)
    assert code == 413 and "1000" in body
    code, _ = slo_error(conn, container, "bad", [{"path": segments[0][0]}], {"Etag": "0" * 32})
    assert code == 422
    with pytest.raises(ClientException) as exc:
        conn.head_object(container, "bad")
    assert status(exc) == 404
    slo_info = conn.get_capabilities()["slo"]
    assert slo_info["max_manifest_segments"] == 1000 and slo_info["min_segment_size"] == 1


def test_malformed_manifests_are_4xx_and_store_nothing(conn: Connection, container: str) -> None:
    (path, _), = put_segments(conn, container, [10])
    assert slo_error(conn, container, "bad", "[" * 100_000 + "]" * 100_000)[0] == 400
    assert slo_error(conn, container, "bad", b"\xff\xfe[]")[0] == 400  # type: ignore[arg-type]
    code, body = slo_error(conn, container, "bad", '[{"path": "' + path + '", "size_bytes": 1e400}]')
    assert (code, body) == (400, "Index 0: invalid size_bytes\n")
    code, body = slo_error(conn, container, "bad", '[{"path": "/c\\ud800/x"}, {"path": "/c/\\u0000"}]')
    assert code == 400 and body.count("404 Not Found") == 2
    assert slo_error(conn, container, "bad", [{"path": path, "range": 5}])[1] == "Index 0: invalid range\n"
    code, body = slo_error(conn, container, "bad", [{"path": path}, {"data": "not base64!"}])
    assert (code, body) == (400, "Index 1: data must be valid base64\n")
    assert slo_error(conn, container, "bad", [{"path": path}] + [{"data": "eA=="}] * 200_000)[0] == 413  # > 2 MiB
    code, body = slo_error(conn, container, "bad", [{"path": path}] + [{}] * 10_000)
    assert (code, body) == (413, "Manifest has more than 10000 entries")
    assert slo_error(conn, container, "bad", [{"data": "eA=="}])[1].startswith("Inline data segments require")
    with pytest.raises(ClientException) as exc:
        conn.head_object(container, "bad")
    assert status(exc) == 404


def test_nested_slo_reads_through_and_loops_are_refused(conn: Connection, container: str) -> None:
    segments = put_segments(conn, container, [100, 200])
    inner_etag = put_slo(conn, container, "inner", segments)["headers"]["etag"].strip('"')
    inner_size = 300
    outer = [{"path": f"/{container}/inner", "etag": inner_etag, "size_bytes": inner_size},
             {"path": segments[0][0], "etag": md5(segments[0][1]), "size_bytes": 100}]
    conn.put_object(container, "outer", json.dumps(outer), query_string="multipart-manifest=put")
    whole = segments[0][1] + segments[1][1] + segments[0][1]
    assert conn.get_object(container, "outer")[1] == whole
    assert conn.get_object(container, "outer", headers={"Range": "bytes=250-349"})[1] == whole[250:350]
    assert json.loads(conn.get_object(container, "outer", query_string="multipart-manifest=get")[1])[0]["sub_slo"]
    # inner -> outer -> inner: writing it is refused.
    code, body = slo_error(conn, container, "inner", [{"path": f"/{container}/outer"}])
    assert code == 400 and body.splitlines()[1] == f"/{container}/outer, Manifest must not include itself as a segment"
    assert conn.get_object(container, "inner")[1] == segments[0][1] + segments[1][1]


def test_slo_nested_deeper_than_swifts_limit_is_409(conn: Connection, container: str) -> None:
    (path, data), = put_segments(conn, container, [10])
    put_slo(conn, container, "level1", [(path, data)])
    for level in range(2, 12):
        conn.put_object(container, f"level{level}", json.dumps([{"path": f"/{container}/level{level - 1}"}]),
                        query_string="multipart-manifest=put")
    assert conn.get_object(container, "level10")[1] == data
    with pytest.raises(ClientException) as exc:
        conn.get_object(container, "level11")
    assert status(exc) == 409
    assert int(conn.head_object(container, "level11")["content-length"]) == 10


def test_slo_missing_segment_is_409_before_the_body_and_a_cut_after(conn: Connection, container: str) -> None:
    segments = put_segments(conn, container, [1024 * KIB, 1024 * KIB, 100])
    put_slo(conn, container, "broken", segments)
    conn.delete_object(container + "_segments", "seg/0002")
    code, headers, body, cut = raw_get(conn, f"/{container}/broken", {})
    assert code == 200 and cut and int(headers["content-length"]) == 2048 * KIB + 100
    assert body == (segments[0][1] + segments[1][1])[:len(body)]
    conn.put_object(container + "_segments", "seg/0002", b"x" * 100)  # replaced: not what the manifest says
    assert raw_get(conn, f"/{container}/broken", {"Range": "bytes=-50"})[0] == 409
    conn.delete_object(container + "_segments", "seg/0000")
    code, _, body, _ = raw_get(conn, f"/{container}/broken", {})
    assert code == 409 and b"Conflict" in body
    assert conn.head_object(container, "broken")["x-static-large-object"] == "True"  # HEAD needs no segment


def test_slo_delete_plain_keeps_segments_and_manifest_delete_removes_them(conn: Connection, container: str) -> None:
    segments = put_segments(conn, container, [10, 20, 30])
    put_slo(conn, container, "keep", segments)
    conn.delete_object(container, "keep")
    assert len(conn.get_container(container + "_segments")[1]) == 3
    put_slo(conn, container, "gone", segments)
    response: dict[str, Any] = {}
    conn.delete_object(container, "gone", query_string="multipart-manifest=delete", response_dict=response)
    assert response["status"] == 200
    assert conn.get_container(container + "_segments")[1] == []
    with pytest.raises(ClientException):
        conn.head_object(container, "gone")
    code, _, body, _ = raw_get(conn, f"/{container}_segments", {})
    assert code == 204 and body == b""


def test_slo_manifest_delete_reports_like_bulk_delete(cluster: LocalCluster, conn: Connection,
                                                      container: str) -> None:
    segments = put_segments(conn, container, [10, 20])
    put_slo(conn, container, "j", segments)
    conn.delete_object(container + "_segments", "seg/0001")
    url, token = conn.get_auth()
    parts = urlsplit(url)
    client = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=60)
    try:
        client.request("DELETE", f"{parts.path}/{container}/j?multipart-manifest=delete",
                       headers={"X-Auth-Token": token, "Accept": "application/json"})
        response = client.getresponse()
        result = json.loads(response.read())
        assert response.status == 200 and response.getheader("Content-Type").startswith("application/json")
        assert result == {"Response Status": "200 OK", "Response Body": "", "Number Deleted": 2,
                          "Number Not Found": 1, "Errors": []}
        conn.put_object(container, "plain", b"not a manifest")
        client.request("DELETE", f"{parts.path}/{container}/plain?multipart-manifest=delete",
                       headers={"X-Auth-Token": token})
        response = client.getresponse()
        text = response.read().decode()
        assert response.status == 200 and "Response Status: 400 Bad Request\n" in text
        assert text.endswith(f"Errors:\n/{container}/plain, Not an SLO manifest\n")
    finally:
        client.close()
    assert conn.get_object(container, "plain")[1] == b"not a manifest"


def test_copy_of_slo_assembles_unless_the_manifest_is_asked_for(conn: Connection, container: str) -> None:
    segments = put_segments(conn, container, [100, 200])
    whole = segments[0][1] + segments[1][1]
    put_slo(conn, container, "src", segments, **{"X-Object-Meta-Kind": "big"})
    conn.copy_object(container, "src", f"/{container}/flat")
    head = conn.head_object(container, "flat")
    assert head["etag"] == md5(whole) and "x-static-large-object" not in head
    assert head["x-object-meta-kind"] == "big" and conn.get_object(container, "flat")[1] == whole
    conn.put_object(container, "still-slo", b"", headers={"X-Copy-From": f"/{container}/src"},
                    query_string="multipart-manifest=get")
    head = conn.head_object(container, "still-slo")
    assert head["x-static-large-object"] == "True" and conn.get_object(container, "still-slo")[1] == whole


# -- DLO -------------------------------------------------------------------------------------

def test_dlo_lists_segments_when_read(conn: Connection, container: str) -> None:
    segments = put_segments(conn, container, [1024 * KIB + 3, 10], prefix="parts/")
    conn.put_object(container, "dlo", b"", headers={"X-Object-Manifest": f"{container}_segments/parts/"})
    whole = b"".join(d for _, d in segments)
    headers, body = conn.get_object(container, "dlo")
    assert body == whole and headers["x-object-manifest"] == f"{container}_segments/parts/"
    assert headers["etag"] == f'"{md5("".join(md5(d) for _, d in segments).encode())}"'
    more = os.urandom(5000)
    conn.put_object(container + "_segments", "parts/0002", more)  # a segment added later is served
    whole += more
    assert conn.get_object(container, "dlo")[1] == whole
    assert int(conn.head_object(container, "dlo")["content-length"]) == len(whole)
    code, headers, body, _ = raw_get(conn, f"/{container}/dlo", {"Range": "bytes=1048570-1048580,-3"})
    assert code == 206 and [p for _, p in byteranges(headers, body)] == [whole[1048570:1048581], whole[-3:]]
    etag = conn.head_object(container, "dlo")["etag"]
    with pytest.raises(ClientException) as exc:
        conn.get_object(container, "dlo", headers={"If-None-Match": etag})
    assert status(exc) == 304
    headers, body = conn.get_object(container, "dlo", query_string="multipart-manifest=get")
    assert body == b"" and headers["etag"] == md5(b"") and headers["x-object-manifest"]


def test_dlo_post_sets_and_drops_the_manifest(conn: Connection, container: str) -> None:
    conn.put_object(container + "_segments", "a/1", b"AAA")
    conn.put_object(container + "_segments", "b/1", b"BBB")
    conn.put_object(container, "d", b"", headers={"X-Object-Manifest": f"{container}_segments/a/"})
    assert conn.get_object(container, "d")[1] == b"AAA"
    conn.post_object(container, "d", headers={"X-Object-Manifest": f"{container}_segments/b/"})
    assert conn.get_object(container, "d")[1] == b"BBB"
    conn.post_object(container, "d", headers={"X-Object-Meta-Note": "plain now"})
    head = conn.head_object(container, "d")
    assert "x-object-manifest" not in head and int(head["content-length"]) == 0


def test_bad_manifest_headers_are_400(conn: Connection, container: str) -> None:
    for value in ["nocontainer", "/prefix", f"{container}/", f"{container}/p?x=1"]:
        with pytest.raises(ClientException) as exc:
            conn.put_object(container, "d", b"", headers={"X-Object-Manifest": value})
        assert status(exc) == 400, value
    with pytest.raises(ClientException) as exc:
        conn.put_object(container, "d", b"[]", headers={"X-Static-Large-Object": "True"})
    assert status(exc) == 400


def test_dlo_that_lists_itself_is_served_raw_without_looping(conn: Connection, container: str) -> None:
    conn.put_object(container, "self/0", b"first")
    conn.put_object(container, "self/manifest", b"", headers={"X-Object-Manifest": f"{container}/self/"})
    assert conn.get_object(container, "self/manifest")[1] == b"first"
    conn.put_object(container, "odd", b"", headers={"X-Object-Manifest": f"{container}/%00%ff%"})
    assert conn.get_object(container, "odd")[1] == b""  # lists nothing: an empty body
    conn.put_object(container, "nowhere", b"", headers={"X-Object-Manifest": f"no-such-{TAG}/p"})
    with pytest.raises(ClientException) as exc:
        conn.get_object(container, "nowhere")
    assert status(exc) == 404


# -- multi-range on plain objects ------------------------------------------------------------

def test_multirange_on_plain_objects(conn: Connection, container: str) -> None:
    body = os.urandom(100_000)
    conn.put_object(container, "p", body)
    code, headers, got, _ = raw_get(conn, f"/{container}/p", {"Range": "bytes=0-9,20-29,-5"})
    assert code == 206 and byteranges(headers, got) == [
        ("bytes 0-9/100000", body[:10]), ("bytes 20-29/100000", body[20:30]), ("bytes 99995-99999/100000", body[-5:])]
    assert byteranges(headers, got) and headers["content-type"].count("boundary=") == 1
    # One satisfiable range of several is a plain 206.
    code, headers, got, _ = raw_get(conn, f"/{container}/p", {"Range": "bytes=5-9,200000-"})
    assert code == 206 and got == body[5:10] and headers["content-range"] == "bytes 5-9/100000"
    many = ",".join(f"{i * 10}-{i * 10 + 1}" for i in range(51))
    assert raw_get(conn, f"/{container}/p", {"Range": "bytes=" + many})[0] == 416
    assert raw_get(conn, f"/{container}/p", {"Range": "bytes=0-50,10-60,20-70"})[0] == 416
    assert raw_get(conn, f"/{container}/p", {"Range": "bytes=200000-,300000-"})[0] == 416
    code, _, got, _ = raw_get(conn, f"/{container}/p", {"Range": "bytes=0-1,zz"})
    assert code == 200 and got == body


# -- S3 reads what Swift wrote ---------------------------------------------------------------

def test_s3_reads_swift_large_objects_assembled(s3: Any, conn: Connection, container: str) -> None:
    segments = put_segments(conn, container, [1024 * KIB + 1, 4000])
    whole = b"".join(d for _, d in segments)
    etag = put_slo(conn, container, "slo", segments, **{"Content-Type": "video/mp4"})["headers"]["etag"]
    got = s3.get_object(Bucket=container, Key="slo")
    assert got["Body"].read() == whole and got["ETag"] == etag and got["ContentType"] == "video/mp4"
    assert s3.head_object(Bucket=container, Key="slo")["ContentLength"] == len(whole)
    ranged = s3.get_object(Bucket=container, Key="slo", Range="bytes=1048570-1048580")
    assert ranged["Body"].read() == whole[1048570:1048581]
    conn.put_object(container, "dlo", b"", headers={"X-Object-Manifest": f"{container}_segments/seg/"})
    assert s3.get_object(Bucket=container, Key="dlo")["Body"].read() == whole


# -- python-swiftclient's SwiftService and the swift command line ----------------------------

@pytest.mark.parametrize("use_slo", [True, False])
def test_swiftservice_segmented_upload_download_delete(cluster: LocalCluster, conn: Connection, container: str,
                                                       tmp_path: Path, use_slo: bool) -> None:
    source = tmp_path / "source.bin"
    data = os.urandom(700 * KIB + 11)
    source.write_bytes(data)
    options = {"auth": cluster.endpoint + "/auth/v1.0", "user": "default:admin", "key": cluster.credentials[1],
               "auth_version": "1.0", "retries": 0}
    with SwiftService(options=options) as service:
        results = list(service.upload(container, [SwiftUploadObject(str(source), object_name="big")],
                                      options={"segment_size": 128 * KIB, "use_slo": use_slo}))
        assert all(r["success"] for r in results), results
        assert len([r for r in results if r["action"] == "upload_segment"]) == 6
        stat = next(iter(service.stat(container, ["big"])))
        headers = stat["headers"]
        assert ("x-static-large-object" in headers) is use_slo and ("x-object-manifest" in headers) is not use_slo
        out = tmp_path / "out.bin"
        downloads = list(service.download(container, ["big"], options={"out_file": str(out)}))
        assert all(d["success"] for d in downloads), downloads
        assert out.read_bytes() == data and md5(out.read_bytes()) == md5(data)
        deleted = list(service.delete(container, ["big"]))
        assert all(d["success"] for d in deleted), deleted
    assert conn.get_container(container + "_segments")[1] == []
    assert conn.get_container(container)[1] == []


def swift_cli(cluster: LocalCluster, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    result = test_swift_client.swift_cli(cluster, *args, cwd=cwd)
    assert result.returncode == 0, result.stderr + result.stdout
    return result


@pytest.mark.parametrize("flag", ["--use-slo", "--use-dlo"])
def test_swift_cli_segmented_upload_stat_download_delete(cluster: LocalCluster, conn: Connection, container: str,
                                                         tmp_path: Path, flag: str) -> None:
    data = os.urandom(300 * KIB + 5)
    (tmp_path / "file.bin").write_bytes(data)
    swift_cli(cluster, "upload", "--segment-size", str(64 * KIB), flag, container, "file.bin", cwd=tmp_path)
    segments = conn.get_container(container + "_segments")[1]
    assert len(segments) == 5
    stat = swift_cli(cluster, "stat", container, "file.bin", cwd=tmp_path).stdout
    assert f"Content Length: {len(data)}" in stat
    assert ("Manifest:" in stat) is (flag == "--use-dlo")
    out = tmp_path / "downloaded.bin"
    swift_cli(cluster, "download", container, "file.bin", "-o", str(out), cwd=tmp_path)
    assert md5(out.read_bytes()) == md5(data) and out.read_bytes() == data
    swift_cli(cluster, "delete", container, "file.bin", cwd=tmp_path)
    assert conn.get_container(container + "_segments")[1] == []
    assert conn.get_container(container)[1] == []
