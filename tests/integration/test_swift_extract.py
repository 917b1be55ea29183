"""Bulk extract (`PUT ...?extract-archive=tar|tar.gz|tar.bz2`) on a real cluster, through
python-swiftclient (put_object / put_container with the query string, as a client of
Swift's bulk middleware sends it) and raw HTTP: objects land where their paths say, with
the request's and the archive's metadata; broken archives and refused files are reported
in the body, as Swift reports them."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import time
from typing import Any
from urllib.parse import quote

import pytest
import requests
from clusterlib import LocalCluster
from swiftlib import TIMEOUT_S, create_user, swift_login

swiftclient = pytest.importorskip("swiftclient")
from swiftclient.client import ClientException, Connection  # noqa: E402

TAG = os.getpid()
MIB = 1024 * 1024


def tar_of(files: dict[str, bytes], mode: str = "w", fmt: int = tarfile.PAX_FORMAT,
           pax: dict[str, dict[str, str]] | None = None, dirs: tuple[str, ...] = ()) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode=mode, format=fmt) as tar:  # type: ignore[call-overload]
        for name in dirs:
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.pax_headers = (pax or {}).get(name, {})
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def extract(conn: Connection, path: str, body: bytes, kind: str = "tar", accept: str = "application/json",
            headers: dict[str, str] | None = None) -> dict[str, Any]:
    """The JSON result of an extraction to ``path`` (the account when "")."""
    url, token = conn.get_auth()
    r = requests.put(f"{url}/{quote(path)}?extract-archive={kind}", data=body, timeout=TIMEOUT_S * 2,
                     headers={"X-Auth-Token": token, "Accept": accept, **(headers or {})})
    assert r.status_code == 200, r.text
    result: dict[str, Any] = json.loads(r.text)
    return result


def name(label: str) -> str:
    return f"ex{TAG}-{label}-{time.monotonic_ns() % 10**9}"


def test_an_archive_sent_to_the_account_fills_containers_made_from_its_first_path_parts(
        swift_conn: Connection) -> None:
    first, second = name("a"), name("b")
    files = {f"{first}/hello.txt": b"hello", f"./{second}/deep/er/data.bin": os.urandom(3000),
             f"{first}/empty": b"", "top-level-file": b"passed over, as Swift does"}
    result = extract(swift_conn, "", tar_of(files, dirs=(f"{first}/a-directory",)))
    assert result == {"Number Files Created": 3, "Response Status": "201 Created", "Response Body": "", "Errors": []}
    headers, body = swift_conn.get_object(first, "hello.txt")
    assert body == b"hello" and headers["content-type"].startswith("text/plain")
    assert swift_conn.get_object(second, "deep/er/data.bin")[1] == files[f"./{second}/deep/er/data.bin"]
    assert swift_conn.get_object(first, "empty")[1] == b""
    assert [o["name"] for o in swift_conn.get_container(first)[1]] == ["empty", "hello.txt"]


@pytest.mark.parametrize("kind, mode", [("tar.gz", "w:gz"), ("tar.bz2", "w:bz2"), (".tar.gz", "w:gz")])
def test_compressed_archives_sent_to_a_container_prefix_are_read(swift_conn: Connection, kind: str,
                                                                 mode: str) -> None:
    container = name("gz")
    swift_conn.put_container(container)
    big = os.urandom(3 * MIB + 17)  # several blocks, and many decompressed pieces
    long = "l" * 150 + "/" + "n" * 120  # a pax long name
    files = {"big.bin": big, long: b"long", "ünï/☃.txt": b"snow"}
    result = extract(swift_conn, f"{container}/pre/fix", tar_of(files, mode=mode), kind=kind)
    assert (result["Number Files Created"], result["Errors"]) == (3, [])
    headers, body = swift_conn.get_object(container, "pre/fix/big.bin")
    assert hashlib.md5(body).hexdigest() == hashlib.md5(big).hexdigest() == headers["etag"]
    assert swift_conn.get_object(container, f"pre/fix/{long}")[1] == b"long"
    assert swift_conn.get_object(container, "pre/fix/ünï/☃.txt")[1] == b"snow"


def test_gnu_long_names_are_read(swift_conn: Connection) -> None:
    container = name("gnu")
    swift_conn.put_container(container)
    long = "g" * 300
    result = extract(swift_conn, container, tar_of({long: b"gnu"}, fmt=tarfile.GNU_FORMAT))
    assert result["Number Files Created"] == 1
    assert swift_conn.get_object(container, long)[1] == b"gnu"


def test_request_headers_and_pax_extended_attributes_become_object_metadata(swift_conn: Connection) -> None:
    container = name("meta")
    swift_conn.put_container(container)
    pax = {"tagged.dat": {"SCHILY.xattr.user.mime_type": "image/x-test", "SCHILY.xattr.user.meta.Color": "blue",
                          "LIBARCHIVE.xattr.user.meta.shape": "round"}}
    result = extract(swift_conn, container, tar_of({"tagged.dat": b"x", "plain.dat": b"y"}, pax=pax),
                     headers={"X-Object-Meta-Batch": "7", "X-Delete-After": "3600"})
    assert result["Number Files Created"] == 2
    tagged = swift_conn.head_object(container, "tagged.dat")
    assert tagged["content-type"] == "image/x-test"
    assert (tagged["x-object-meta-color"], tagged["x-object-meta-shape"], tagged["x-object-meta-batch"]) == \
        ("blue", "round", "7")
    plain = swift_conn.head_object(container, "plain.dat")
    assert plain["x-object-meta-batch"] == "7" and "x-object-meta-color" not in plain
    assert 0 < int(plain["x-delete-at"]) - time.time() <= 3600


def test_swiftclient_put_object_with_the_query_string_extracts(swift_conn: Connection) -> None:
    """What a script using python-swiftclient sends: put_object with query_string."""
    container = name("sc")
    swift_conn.put_container(container)
    url, token = swift_conn.get_auth()
    from swiftclient.client import put_object
    put_object(url, token, container=container, name="", contents=tar_of({"one": b"1", "two/three": b"3"}),
               query_string="extract-archive=tar", headers={"Accept": "application/json"})
    assert sorted(o["name"] for o in swift_conn.get_container(container)[1]) == ["one", "two/three"]


@pytest.mark.parametrize("accept, marker", [("text/plain", b"Response Status: 400 Bad Request"),
                                            ("application/xml", b"<response_status>400 Bad Request")])
def test_a_damaged_archive_is_a_400_in_the_body_and_what_came_before_it_is_kept(
        swift_conn: Connection, accept: str, marker: bytes) -> None:
    container = name("bad")
    swift_conn.put_container(container)
    archive = tar_of({"first": b"1" * 2000, "second": os.urandom(100_000)})
    url, token = swift_conn.get_auth()
    r = requests.put(f"{url}/{container}?extract-archive=tar", data=archive[:60_000], timeout=TIMEOUT_S,
                     headers={"X-Auth-Token": token, "Accept": accept})
    assert r.status_code == 200 and marker in r.content and b"Invalid Tar File" in r.content
    assert swift_conn.get_object(container, "first")[1] == b"1" * 2000
    with pytest.raises(ClientException) as missing:
        swift_conn.head_object(container, "second")  # cut short: never stored in part
    assert missing.value.http_status == 404
    garbage = extract(swift_conn, container, os.urandom(5000), kind="tar.gz")
    assert garbage["Response Status"] == "400 Bad Request" and garbage["Response Body"].startswith("Invalid Tar File")


def test_files_that_cannot_be_stored_are_listed_with_their_status(swift_conn: Connection) -> None:
    container = name("errs")
    swift_conn.put_container(container, headers={"X-Container-Meta-Quota-Bytes": "1000"})
    files = {"fits": b"f" * 100, "too-big-for-the-quota": b"q" * 5000, "n" * 1100: b"name too long"}
    result = extract(swift_conn, container, tar_of(files))
    assert result["Number Files Created"] == 1
    assert result["Response Status"] == "400 Bad Request"
    assert sorted(result["Errors"]) == sorted([
        [quote(f"{container}/too-big-for-the-quota"), "413 Request Entity Too Large"],
        [quote(f"{container}/{'n' * 1100}"), "400 Bad Request"]])
    assert swift_conn.get_object(container, "fits")[1] == b"f" * 100
    empty = extract(swift_conn, container, tar_of({}, dirs=("only-a-dir",)))
    assert (empty["Response Status"], empty["Response Body"]) == ("400 Bad Request", "Invalid Tar File: No Valid Files")


def test_bad_requests_are_refused_in_swift_fashion(swift_conn: Connection, cluster: LocalCluster) -> None:
    url, token = swift_conn.get_auth()
    archive = tar_of({"c/x": b"x"})
    unsupported = requests.put(f"{url}?extract-archive=zip", data=archive, headers={"X-Auth-Token": token},
                               timeout=TIMEOUT_S)
    assert unsupported.status_code == 400 and b"Unsupported archive format" in unsupported.content
    unacceptable = requests.put(f"{url}?extract-archive=tar", data=archive, timeout=TIMEOUT_S,
                                headers={"X-Auth-Token": token, "Accept": "image/png"})
    assert unacceptable.status_code == 406
    anonymous = requests.put(f"{url}?extract-archive=tar", data=archive, timeout=TIMEOUT_S)
    assert anonymous.status_code == 401
    info = requests.get(cluster.endpoint + "/info", timeout=TIMEOUT_S).json()
    assert info["bulk_upload"] == {"max_containers_per_extraction": 10000, "max_failed_extractions": 1000}


def test_another_accounts_user_extracts_only_into_containers_it_may_write(swift_conn: Connection,
                                                                          cluster: LocalCluster) -> None:
    account = f"exacct{TAG}"
    create_user(cluster, account, "bob", "--swift-key", "bob-key")
    bob = swift_login(cluster, f"{account}:bob", "bob-key")
    shared, private = name("shared"), name("private")
    url = swift_conn.get_auth()[0]
    swift_conn.put_container(shared, headers={"X-Container-Write": f"{account}:bob"})
    swift_conn.put_container(private)
    archive = tar_of({f"{shared}/from-bob": b"b", f"{private}/from-bob": b"b", f"{name('new')}/from-bob": b"b"})
    r = requests.put(f"{url}?extract-archive=tar", data=archive, timeout=TIMEOUT_S,
                     headers={"X-Auth-Token": bob.token, "Accept": "application/json"})
    result = r.json()
    assert r.status_code == 200 and result["Number Files Created"] == 1
    assert sorted(status for _, status in result["Errors"]) == ["403 Forbidden", "403 Forbidden"]
    assert swift_conn.get_object(shared, "from-bob")[1] == b"b"
    assert swift_conn.get_container(private)[1] == []
