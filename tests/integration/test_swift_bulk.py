"""Bulk delete (`?bulk-delete`) on a real cluster, through python-swiftclient and the
`swift` command line: objects and containers, each result format, not-found counting,
failures, and refused lists. As in Swift, the HTTP status is always 200 and the outcome
("Response Status", counts, "Errors") is in the body."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote

import pytest
import requests
from clusterlib import LocalCluster

swiftclient = pytest.importorskip("swiftclient")
from swiftclient.client import ClientException, Connection  # noqa: E402

TAG = os.getpid()
TIMEOUT_S = 60
NAMES = ["plain", "dir/with space", "ünïcødé/文件 #1?", "100%"]


@pytest.fixture
def container(swift_conn: Connection, request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"bd{TAG}-{request.node.name[:40]}".lower().replace("[", "-").replace("]", "").replace("_", "-")
    swift_conn.put_container(name)
    yield name


def bulk(swift_conn: Connection, lines: list[str], accept: str = "application/json",
         content_type: str = "text/plain") -> tuple[dict[str, str], bytes]:
    headers, body = swift_conn.post_account(headers={"Accept": accept, "Content-Type": content_type},
                                      query_string="bulk-delete", data="".join(f"{line}\n" for line in lines))
    return headers, body


def bulk_json(swift_conn: Connection, lines: list[str]) -> dict[str, Any]:
    headers, body = bulk(swift_conn, lines)
    assert headers["content-type"].startswith("application/json")
    result: dict[str, Any] = json.loads(body)
    return result


def path(container: str, name: str | None = None) -> str:
    return quote(f"/{container}" + (f"/{name}" if name is not None else ""))


def gone(swift_conn: Connection, container: str, name: str | None = None) -> bool:
    try:
        swift_conn.head_object(container, name) if name is not None else swift_conn.head_container(container)
    except ClientException as exc:
        return bool(exc.http_status == 404)
    return False


def test_objects_then_their_container_are_deleted(swift_conn: Connection, container: str) -> None:
    for name in NAMES:
        swift_conn.put_object(container, name, name.encode())
    # The container comes first in the list: objects are deleted before containers.
    result = bulk_json(swift_conn, [path(container)] + [path(container, n) for n in NAMES] + [path(container, "nope")])
    assert result == {"Response Status": "200 OK", "Response Body": "", "Number Deleted": len(NAMES) + 1,
                      "Number Not Found": 1, "Errors": []}
    assert gone(swift_conn, container)


def test_delete_method_and_leading_slashes_work_too(cluster: LocalCluster, swift_conn: Connection,
                                                    container: str) -> None:
    swift_conn.put_object(container, "a", b"a")
    url, token = swift_conn.get_auth()
    r = requests.delete(url + "?bulk-delete", data=f"{container}/a\n//{container}/missing".encode(),
                        headers={"X-Auth-Token": token, "Accept": "application/json"}, timeout=TIMEOUT_S)
    assert r.status_code == 200
    assert (r.json()["Number Deleted"], r.json()["Number Not Found"]) == (1, 1)
    assert gone(swift_conn, container, "a")


def test_only_missing_paths_are_counted_as_not_found(swift_conn: Connection, container: str) -> None:
    result = bulk_json(swift_conn, [path(container, "x"), path(container, "y"), path(f"{container}-no-such")])
    assert (result["Response Status"], result["Number Deleted"], result["Number Not Found"]) == ("200 OK", 0, 3)


def _parse_plain(body: bytes) -> tuple[dict[str, str], list[str]]:
    head, _, errors = body.decode().partition("Errors:\n")
    fields = dict(line.split(": ", 1) for line in head.splitlines())
    return fields, errors.splitlines()


def _parse_xml(body: bytes) -> tuple[dict[str, str], list[str]]:
    root = ET.fromstring(body)
    assert root.tag == "delete"
    fields = {child.tag: child.text or "" for child in root if child.tag != "errors"}
    errors = [f"{o.findtext('name')}, {o.findtext('status')}" for o in root.iter("object")]
    return fields, errors


@pytest.mark.parametrize("accept", ["text/plain", "application/xml", "text/xml", "*/*"])
def test_each_result_format_reports_a_non_empty_container(swift_conn: Connection, container: str, accept: str) -> None:
    swift_conn.put_object(container, "stays", b"1")
    swift_conn.put_object(container, "goes", b"2")
    headers, body = bulk(swift_conn, [path(container, "goes"), path(container)], accept=accept)
    if accept in ("text/plain", "*/*"):
        assert headers["content-type"].startswith("text/plain")
        assert body.decode() == ("Number Deleted: 1\nNumber Not Found: 0\nResponse Body: \n"
                                 f"Response Status: 400 Bad Request\nErrors:\n/{container}, 409 Conflict\n")
    else:
        assert headers["content-type"].startswith(accept)
        fields, errors = _parse_xml(body)
        assert fields == {"number_deleted": "1", "number_not_found": "0", "response_body": "",
                          "response_status": "400 Bad Request"}
        assert errors == [f"/{container}, 409 Conflict"]
    assert gone(swift_conn, container, "goes") and not gone(swift_conn, container)


def test_failed_paths_are_listed_url_encoded(swift_conn: Connection, container: str) -> None:
    swift_conn.put_object(container, "ünï code", b"1")
    too_long = "o" * 1025
    result = bulk_json(swift_conn, [path(container), path(container, too_long), f"/{container}/%FF%FE"])
    assert result["Response Status"] == "400 Bad Request"
    assert sorted(result["Errors"]) == sorted([[quote(f"/{container}"), "409 Conflict"],
                                               [quote(f"/{container}/{too_long}"), "400 Bad Request"],
                                               [f"/{container}/%FF%FE", "412 Precondition Failed"]])


def test_a_list_over_the_limit_deletes_nothing(swift_conn: Connection, container: str) -> None:
    swift_conn.put_object(container, "first", b"1")
    lines = [path(container, "first")] + [path(container, f"n{i}") for i in range(10000)]
    result = bulk_json(swift_conn, lines)
    assert result["Response Status"] == "413 Request Entity Too Large"
    assert result["Response Body"] == "Maximum Bulk Deletes: 10000 per request"
    assert result["Number Deleted"] == 0 and not gone(swift_conn, container, "first")


@pytest.mark.parametrize("lines, content_type, status, body", [
    ([], "text/plain", "400 Bad Request", "Invalid bulk delete."),
    (["/" + "c" * 5000], "text/plain", "400 Bad Request", "Invalid File Name"),
    (["/c/o"], "application/json", "406 Not Acceptable", None),
])
def test_malformed_requests_are_refused(swift_conn: Connection, lines: list[str], content_type: str, status: str,
                                        body: str | None) -> None:
    result = json.loads(bulk(swift_conn, lines, content_type=content_type)[1])
    assert result["Response Status"] == status and result["Number Deleted"] == 0
    if body is not None:
        assert result["Response Body"] == body


def test_unacceptable_accept_is_reported_in_plain_text(swift_conn: Connection) -> None:
    headers, body = bulk(swift_conn, ["/c/o"], accept="image/png")
    fields, _ = _parse_plain(body)
    assert fields["Response Status"] == "406 Not Acceptable" and fields["Number Deleted"] == "0"


def test_info_advertises_bulk_delete(swift_conn: Connection) -> None:
    assert swift_conn.get_capabilities()["bulk_delete"] == {"max_deletes_per_request": 10000,
                                                      "max_failed_deletes": 1000}


def test_swift_cli_delete_uses_bulk_delete(cluster: LocalCluster, swift_conn: Connection, container: str) -> None:
    # swiftclient turns to bulk delete above 2 x its 10 object threads, if /info offers it.
    names = [f"file {i:02d}.txt" for i in range(25)] + ["ünï/文件"]
    for name in names:
        swift_conn.put_object(container, name, name.encode())
    swift = Path(sys.executable).parent / "swift"
    # v1 auth from the environment: a key starting with "-" would read as an option after -K.
    env = {**os.environ, "ST_AUTH": cluster.endpoint + "/auth/v1.0", "ST_USER": "default:admin",
           "ST_KEY": cluster.credentials[1]}
    result = subprocess.run([str(swift), "--debug", "delete", container], capture_output=True, text=True,
                            timeout=TIMEOUT_S * 2, stdin=subprocess.DEVNULL, env=env)
    assert result.returncode == 0, result.stderr
    assert "bulk-delete" in result.stderr  # the debug log shows the requests it sent
    assert "Error Deleting" not in result.stderr
    assert sorted(result.stdout.split("\n")[:-1]) == sorted(names + [container])
    assert gone(swift_conn, container)
