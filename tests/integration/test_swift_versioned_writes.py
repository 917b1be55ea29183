"""Swift's versioned writes (X-Versions-Location: stack mode, X-History-Location: history
mode) on a real cluster, through python-swiftclient: what an overwrite or a delete leaves in
the archive container, under the names Swift gives the versions, and what comes back."""

from __future__ import annotations

import os
import time

import pytest
import requests
from clusterlib import LocalCluster

swiftclient = pytest.importorskip("swiftclient")
from swiftclient.client import ClientException, Connection  # noqa: E402

TAG = os.getpid()
MARKER_TYPE = "application/x-deleted;swift_versions_deleted=1"


def names(label: str) -> tuple[str, str]:
    stamp = time.monotonic_ns() % 10**9
    return f"vw{TAG}-{label}-{stamp}", f"vw{TAG}-{label}-{stamp}-archive"


def archived(conn: Connection, archive: str) -> list[tuple[str, str, int]]:
    return [(o["name"], o["content_type"], o["bytes"]) for o in conn.get_container(archive)[1]]


def status_of(call: object) -> int:
    try:
        call()  # type: ignore[operator]
    except ClientException as exc:
        return int(exc.http_status)
    return 200


def test_stack_mode_keeps_each_overwritten_version_and_a_delete_brings_the_last_back(swift_conn: Connection) -> None:
    container, archive = names("stack")
    swift_conn.put_container(archive)
    swift_conn.put_container(container, headers={"X-Versions-Location": archive})
    assert swift_conn.head_container(container)["x-versions-location"] == archive
    for body in (b"one", b"two", b"three"):
        swift_conn.put_object(container, "doc", body)
    kept = archived(swift_conn, archive)
    assert [(n[:7], t, size) for n, t, size in kept] == [("003doc/", "application/octet-stream", 3)] * 2
    assert all(len(n.split("/")[1]) == 16 and "." in n for n, _, _ in kept)  # <10 digits>.<5 digits>
    assert swift_conn.get_object(archive, kept[0][0])[1] == b"one"
    assert swift_conn.get_object(container, "doc")[1] == b"three"
    swift_conn.post_object(container, "doc", headers={"X-Object-Meta-Note": "metadata only"})
    assert len(archived(swift_conn, archive)) == 2  # a POST makes no version
    swift_conn.delete_object(container, "doc")
    assert swift_conn.get_object(container, "doc")[1] == b"two"
    swift_conn.delete_object(container, "doc")
    assert swift_conn.get_object(container, "doc")[1] == b"one" and archived(swift_conn, archive) == []
    swift_conn.delete_object(container, "doc")
    assert status_of(lambda: swift_conn.head_object(container, "doc")) == 404
    assert status_of(lambda: swift_conn.delete_object(container, "doc")) == 404


def test_history_mode_archives_on_delete_with_a_delete_marker(swift_conn: Connection) -> None:
    container, archive = names("hist")
    swift_conn.put_container(archive)
    swift_conn.put_container(container, headers={"X-History-Location": archive})
    head = swift_conn.head_container(container)
    assert head["x-history-location"] == archive and "x-versions-location" not in head
    name = "naïve ☃"  # the prefix counts bytes: 10 in UTF-8
    swift_conn.put_object(container, name, b"v1")
    swift_conn.put_object(container, name, b"v2")
    swift_conn.delete_object(container, name)
    assert status_of(lambda: swift_conn.get_object(container, name)) == 404
    kept = archived(swift_conn, archive)
    assert [n[:len(f"00a{name}/")] for n, _, _ in kept] == [f"00a{name}/"] * 3
    assert [(t, size) for _, t, size in kept] == [("application/octet-stream", 2)] * 2 + [(MARKER_TYPE, 0)]
    assert [swift_conn.get_object(archive, n)[1] for n, _, _ in kept[:2]] == [b"v1", b"v2"]
    # Restoring is a COPY from the archive; the archive keeps its source.
    swift_conn.copy_object(archive, kept[0][0], destination=f"/{container}/{name}")
    assert swift_conn.get_object(container, name)[1] == b"v1" and len(archived(swift_conn, archive)) == 3


def test_stack_mode_delete_undoes_a_history_mode_delete(swift_conn: Connection) -> None:
    container, archive = names("undo")
    swift_conn.put_container(archive)
    swift_conn.put_container(container, headers={"X-History-Location": archive})
    swift_conn.put_object(container, "f", b"first")
    swift_conn.put_object(container, "f", b"second")
    swift_conn.delete_object(container, "f")  # archive: first, second, marker
    swift_conn.post_container(container, headers={"X-Versions-Location": archive})
    head = swift_conn.head_container(container)
    assert head["x-versions-location"] == archive and "x-history-location" not in head
    swift_conn.delete_object(container, "f")  # the marker and "second" leave, "second" is back
    assert swift_conn.get_object(container, "f")[1] == b"second"
    assert [t for _, t, _ in archived(swift_conn, archive)] == ["application/octet-stream"]


def test_a_copy_onto_a_versioned_object_archives_it_and_large_ones_stay_whole(swift_conn: Connection) -> None:
    container, archive = names("copy")
    swift_conn.put_container(archive)
    swift_conn.put_container(container, headers={"X-Versions-Location": archive})
    big = os.urandom(3 * 1024 * 1024 + 5)  # in blocks, not inline
    swift_conn.put_object(container, "target", big, headers={"X-Object-Meta-Kept": "yes"})
    swift_conn.put_object(container, "source", b"small")
    swift_conn.copy_object(container, "source", destination=f"/{container}/target")
    [(version, _, size)] = archived(swift_conn, archive)
    headers, body = swift_conn.get_object(archive, version)
    assert (size, body, headers["x-object-meta-kept"]) == (len(big), big, "yes")
    assert swift_conn.get_object(container, "target")[1] == b"small"


def test_without_its_archive_container_an_overwrite_is_refused_and_nothing_is_lost(swift_conn: Connection) -> None:
    container, archive = names("noarch")
    swift_conn.put_container(container, headers={"X-Versions-Location": archive})
    swift_conn.put_object(container, "kept", b"original")  # nothing to archive yet
    assert status_of(lambda: swift_conn.put_object(container, "kept", b"replacement")) == 412
    assert swift_conn.get_object(container, "kept")[1] == b"original"
    swift_conn.delete_object(container, "kept")  # stack mode without versions: a plain delete
    assert status_of(lambda: swift_conn.head_object(container, "kept")) == 404


def test_versioning_headers_are_checked_and_can_be_removed(swift_conn: Connection, cluster: LocalCluster) -> None:
    container, archive = names("hdrs")
    both = {"X-Versions-Location": archive, "X-History-Location": archive}
    assert status_of(lambda: swift_conn.put_container(container, headers=both)) == 400
    assert status_of(lambda: swift_conn.put_container(container, headers={"X-Versions-Location": "a/b"})) == 412
    swift_conn.put_container(container, headers={"X-Versions-Location": archive})
    swift_conn.post_container(container, headers={"X-Remove-Versions-Location": "x"})
    assert "x-versions-location" not in swift_conn.head_container(container)
    swift_conn.post_container(container, headers={"X-History-Location": archive})
    swift_conn.post_container(container, headers={"X-History-Location": ""})
    head = swift_conn.head_container(container)
    assert "x-history-location" not in head and "x-versions-location" not in head
    swift_conn.put_object(container, "free", b"1")
    swift_conn.put_object(container, "free", b"2")  # unversioned again: no archive needed
    info = requests.get(cluster.endpoint + "/info", timeout=30).json()
    assert info["versioned_writes"] == {"allowed_flags": ["x-versions-location", "x-history-location"]}
