"""python-swiftclient and the `swift` command line against a real cluster, and objects
crossing between the Swift and S3 APIs (body, ETag, content type, user metadata)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
from clusterlib import LocalCluster

swiftclient = pytest.importorskip("swiftclient")
from swiftclient.client import ClientException, Connection  # noqa: E402

TAG = os.getpid()
CLI_TIMEOUT_S = 60


@pytest.fixture(scope="module")
def conn(cluster: LocalCluster) -> Connection:
    return Connection(authurl=cluster.endpoint + "/auth/v1.0", user="default:admin",
                      key=cluster.credentials[1], retries=1, timeout=30)


@pytest.fixture
def container(conn: Connection, request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"sc{TAG}-{request.node.name[:40]}".replace("[", "-").replace("]", "")
    conn.put_container(name)
    yield name


def status(exc: pytest.ExceptionInfo[ClientException]) -> int:
    return int(exc.value.http_status)


def test_put_get_head_delete(conn: Connection, container: str) -> None:
    body = os.urandom(2 * 1024 * 1024 + 17)
    etag = conn.put_object(container, "dir/file.bin", body, headers={"X-Object-Meta-Color": "blue"})
    assert etag == hashlib.md5(body).hexdigest()
    headers, got = conn.get_object(container, "dir/file.bin")
    assert got == body
    assert headers["etag"] == etag and headers["x-object-meta-color"] == "blue"
    assert headers["content-type"] == "application/octet-stream"
    head = conn.head_object(container, "dir/file.bin")
    assert int(head["content-length"]) == len(body)
    _, part = conn.get_object(container, "dir/file.bin", headers={"Range": "bytes=100-199"})
    assert part == body[100:200]
    # Streaming download in chunks.
    _, chunks = conn.get_object(container, "dir/file.bin", resp_chunk_size=65536)
    assert b"".join(chunks) == body
    conn.delete_object(container, "dir/file.bin")
    with pytest.raises(ClientException) as exc:
        conn.head_object(container, "dir/file.bin")
    assert status(exc) == 404
    with pytest.raises(ClientException) as exc:
        conn.delete_object(container, "dir/file.bin")
    assert status(exc) == 404


def test_content_type_is_guessed_from_the_name(conn: Connection, container: str) -> None:
    conn.put_object(container, "page.html", b"<p>hi</p>")
    assert conn.head_object(container, "page.html")["content-type"].startswith("text/html")
    conn.put_object(container, "given.html", b"x", content_type="text/x-mine")
    assert conn.head_object(container, "given.html")["content-type"] == "text/x-mine"


def test_file_like_upload_is_chunked(conn: Connection, container: str, tmp_path: Path) -> None:
    path = tmp_path / "upload"
    data = os.urandom(600_000)
    path.write_bytes(data)
    with open(path, "rb") as f:
        etag = conn.put_object(container, "from-file", f, chunk_size=65536)  # no length: chunked
    assert etag == hashlib.md5(data).hexdigest()
    assert conn.get_object(container, "from-file")[1] == data


def test_etag_mismatch_is_422(conn: Connection, container: str) -> None:
    with pytest.raises(ClientException) as exc:
        conn.put_object(container, "bad", b"body", etag="0" * 32)
    assert status(exc) == 422
    with pytest.raises(ClientException) as exc:
        conn.head_object(container, "bad")
    assert status(exc) == 404


def test_post_and_copy(conn: Connection, container: str) -> None:
    conn.put_object(container, "orig", b"payload", headers={"X-Object-Meta-Old": "o"})
    conn.post_object(container, "orig", headers={"X-Object-Meta-New": "n"})
    head = conn.head_object(container, "orig")
    assert head.get("x-object-meta-new") == "n" and "x-object-meta-old" not in head
    conn.copy_object(container, "orig", f"/{container}/copy1", headers={"X-Object-Meta-Extra": "e"})
    headers, body = conn.get_object(container, "copy1")
    assert body == b"payload" and headers["x-object-meta-new"] == "n" and headers["x-object-meta-extra"] == "e"
    assert headers["etag"] == hashlib.md5(b"payload").hexdigest()
    conn.put_object(container, "copy2", None, headers={"X-Copy-From": f"/{container}/orig"})
    assert conn.get_object(container, "copy2")[1] == b"payload"


def test_listings_with_prefix_delimiter_marker_limit(conn: Connection, container: str) -> None:
    names = [f"logs/2024/{i:03d}.log" for i in range(25)] + ["logs/readme", "top"]
    for name in names:
        conn.put_object(container, name, name.encode())
    _, listing = conn.get_container(container, full_listing=True)
    assert [e["name"] for e in listing] == sorted(names)
    assert all(e["bytes"] == len(e["name"]) and e["hash"] == hashlib.md5(e["name"].encode()).hexdigest()
               for e in listing)
    _, page = conn.get_container(container, prefix="logs/", delimiter="/")
    assert [e.get("subdir", e.get("name")) for e in page] == ["logs/2024/", "logs/readme"]
    _, page = conn.get_container(container, marker="logs/2024/010.log", limit=3)
    assert [e["name"] for e in page] == [f"logs/2024/{i:03d}.log" for i in (11, 12, 13)]
    # full_listing pages by marker with the server's limit; make it small to force many pages.
    seen: list[str] = []
    marker = ""
    for _ in range(20):  # bounded: 27 names, 5 per page
        _, page = conn.get_container(container, marker=marker, limit=5)
        if not page:
            break
        seen += [e["name"] for e in page]
        marker = page[-1]["name"]
    assert seen == sorted(names)
    _, page = conn.get_container(container, end_marker="logs/2024/002.log")
    assert [e["name"] for e in page] == ["logs/2024/000.log", "logs/2024/001.log"]


def test_account_and_container_stats(conn: Connection) -> None:
    name = f"stats{TAG}"
    conn.put_container(name)
    conn.put_object(name, "a", b"12345")
    conn.put_object(name, "b", b"678")
    head = conn.head_container(name)
    assert head["x-container-object-count"] == "2" and head["x-container-bytes-used"] == "8"
    account_headers, containers = conn.get_account(prefix=name)
    assert [(c["name"], c["count"], c["bytes"]) for c in containers] == [(name, 2, 8)]
    assert int(account_headers["x-account-container-count"]) >= 1
    assert int(conn.head_account()["x-account-bytes-used"]) >= 8
    with pytest.raises(ClientException) as exc:
        conn.delete_container(name)
    assert status(exc) == 409
    conn.delete_object(name, "a")
    conn.delete_object(name, "b")
    conn.delete_container(name)
    with pytest.raises(ClientException) as exc:
        conn.head_container(name)
    assert status(exc) == 404


def test_wrong_key_and_foreign_account(cluster: LocalCluster, conn: Connection) -> None:
    bad = Connection(authurl=cluster.endpoint + "/auth/v1.0", user="default:admin", key="wrong", retries=0)
    with pytest.raises(ClientException) as exc:
        bad.head_account()
    assert status(exc) == 401
    url, token = conn.get_auth()
    forged = Connection(preauthurl=url, preauthtoken=token[:-2] + "00", retries=0)
    with pytest.raises(ClientException) as exc:
        forged.head_account()
    assert status(exc) == 401


# -- the same objects through S3 -------------------------------------------------------------


def test_swift_objects_read_identically_through_s3(conn: Connection, s3: Any, container: str) -> None:
    body = os.urandom(40_000)
    etag = conn.put_object(container, "from-swift.txt", body, content_type="text/plain",
                           headers={"X-Object-Meta-Origin": "swift", "Content-Disposition": "inline"})
    got = s3.get_object(Bucket=container, Key="from-swift.txt")
    assert got["Body"].read() == body
    assert got["ETag"] == f'"{etag}"'
    assert got["ContentType"] == "text/plain"
    assert got["Metadata"] == {"origin": "swift"}
    assert got["ContentDisposition"] == "inline"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=container)["Contents"]]
    assert keys == ["from-swift.txt"]


def test_s3_objects_read_identically_through_swift(conn: Connection, s3: Any, bucket: str) -> None:
    body = os.urandom(3 * 1024 * 1024 + 3)
    put = s3.put_object(Bucket=bucket, Key="from-s3.bin", Body=body, ContentType="application/x-s3",
                        Metadata={"Origin": "s3", "note": "hello"})
    headers, got = conn.get_object(bucket, "from-s3.bin")
    assert got == body
    assert f'"{headers["etag"]}"' == put["ETag"]
    assert headers["content-type"] == "application/x-s3"
    assert headers["x-object-meta-origin"] == "s3" and headers["x-object-meta-note"] == "hello"
    _, listing = conn.get_account(prefix=bucket)
    assert [c["name"] for c in listing] == [bucket]
    _, objects = conn.get_container(bucket)
    assert [(o["name"], o["bytes"], o["hash"]) for o in objects] == [("from-s3.bin", len(body),
                                                                      put["ETag"].strip('"'))]
    # A multipart S3 object keeps its S3 ETag through Swift.
    mp = s3.create_multipart_upload(Bucket=bucket, Key="multi")
    part = s3.upload_part(Bucket=bucket, Key="multi", UploadId=mp["UploadId"], PartNumber=1, Body=b"m" * 10)
    done = s3.complete_multipart_upload(Bucket=bucket, Key="multi", UploadId=mp["UploadId"],
                                        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    headers, got = conn.get_object(bucket, "multi")
    assert got == b"m" * 10 and headers["etag"] == done["ETag"].strip('"')
    # Deleting through Swift is seen by S3.
    conn.delete_object(bucket, "from-s3.bin")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])] == ["multi"]


# -- the swift command line ------------------------------------------------------------------


def swift_cli(cluster: LocalCluster, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    script = shutil.which("swift", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("the swift command line is not installed")
    # The key goes in ST_KEY, not -K: a generated key may start with "-".
    return subprocess.run([script, "-A", cluster.endpoint + "/auth/v1.0", "-U", "default:admin", *args],
                          capture_output=True, text=True, cwd=cwd, timeout=CLI_TIMEOUT_S, stdin=subprocess.DEVNULL,
                          env={**os.environ, "ST_KEY": cluster.credentials[1]})


def test_swift_command_line(cluster: LocalCluster, tmp_path: Path) -> None:
    name = f"cli{TAG}"
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "one.txt").write_bytes(b"first file\n")
    (src / "sub" / "two.bin").write_bytes(os.urandom(70_000))
    result = swift_cli(cluster, "upload", name, "one.txt", "sub/two.bin", cwd=src)
    assert result.returncode == 0, result.stderr
    result = swift_cli(cluster, "list", name)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["one.txt", "sub/two.bin"]
    result = swift_cli(cluster, "list", name, "--json")
    assert result.returncode == 0, result.stderr
    assert [e["name"] for e in json.loads(result.stdout)] == ["one.txt", "sub/two.bin"]
    result = swift_cli(cluster, "stat", name)
    assert result.returncode == 0, result.stderr
    assert "Objects: 2" in result.stdout
    assert swift_cli(cluster, "stat").returncode == 0
    result = swift_cli(cluster, "post", "-m", "Color:red", name, "one.txt")
    assert result.returncode == 0, result.stderr
    result = swift_cli(cluster, "stat", name, "one.txt")
    assert "Meta Color: red" in result.stdout, result.stdout
    dest = tmp_path / "dest"
    dest.mkdir()
    result = swift_cli(cluster, "download", name, cwd=dest)
    assert result.returncode == 0, result.stderr
    assert (dest / "one.txt").read_bytes() == b"first file\n"
    assert (dest / "sub" / "two.bin").read_bytes() == (src / "sub" / "two.bin").read_bytes()
    result = swift_cli(cluster, "copy", name, "one.txt", "--destination", f"/{name}/three.txt")
    assert result.returncode == 0, result.stderr
    result = swift_cli(cluster, "delete", name)
    assert result.returncode == 0, result.stderr
    result = swift_cli(cluster, "list")
    assert name not in result.stdout.split()
