"""A directory's deferred chmod, chown and utimensat when the server fails to store them: the
mount (its real S3 client) against a server answering crafted bytes. The attributes stay
shown and pending, fsync of the directory answers EIO, and the next write stores them."""

from __future__ import annotations

import errno
import stat
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from edgestore.fuse.dirtimes import DirTimes
from edgestore.fuse.files import Tuning
from edgestore.fuse.fs import EdgeFS
from edgestore.fuse.metadata import DIR_CONTENT_TYPE, Attr
from edgestore.fuse.s3client import S3Client


class CopyServer(ThreadingHTTPServer):
    """Answers every request with 500 while ``failing``, else a copy's 200; records the
    metadata of the copies it answered 200."""
    daemon_threads = True
    failing = True
    stored: list[dict[str, str]]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: CopyServer

    def do_PUT(self) -> None:  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.server.failing:
            self.answer(500, b"<Error><Code>InternalError</Code></Error>")
            return
        meta = {k.lower(): v for k, v in self.headers.items() if k.lower().startswith("x-amz-meta-")}
        self.server.stored.append(meta)
        self.answer(200, b"<CopyObjectResult></CopyObjectResult>")

    def answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[CopyServer]:
    srv = CopyServer(("127.0.0.1", 0), Handler)
    srv.stored = []
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def test_a_directorys_metadata_the_server_failed_to_store_is_kept_and_stored_later(server: CopyServer) -> None:
    client = S3Client(f"http://127.0.0.1:{server.server_address[1]}", "bucket", "key", "secret")
    fs = EdgeFS(client, Tuning())  # not started: nothing is written but by the flushes below
    stamp = 1_600_000_000_123_456_789
    chmodded = Attr(stat.S_IFDIR | 0o751, 1234, 5678, 0, stamp, stamp, stamp, DIR_CONTENT_TYPE)
    shown_before = Attr(stat.S_IFDIR | 0o700, 0, 0, 0, 1, 1, 1, DIR_CONTENT_TYPE)
    try:
        fs.dirtimes.defer("/d", chmodded)  # as chmod, chown and utimensat of /d leave it
        with pytest.raises(OSError) as caught:
            fs.fsyncdir("/d", 0, 0)
        assert caught.value.errno == errno.EIO
        shown = fs.dirtimes.overlay("/d", shown_before)
        assert (shown.mode, shown.uid, shown.gid, shown.mtime_ns) == (stat.S_IFDIR | 0o751, 1234, 5678, stamp)
        assert server.stored == []

        server.failing = False
        fs.fsyncdir("/d", 0, 0)
        assert [(m["x-amz-meta-mode"], m["x-amz-meta-uid"], m["x-amz-meta-gid"]) for m in server.stored] == \
            [(str(stat.S_IFDIR | 0o751), "1234", "5678")]
        fs.fsyncdir("/d", 0, 0)  # nothing pending any more
        assert len(server.stored) == 1
    finally:
        fs.destroy("/")


def test_the_background_flush_writes_only_changes_older_than_the_delay() -> None:
    """So that tar's utimensat, chown and chmod of a directory, a moment apart, are never
    split into two writes by a tick landing between them: the tick passes the time before
    which a directory's first unwritten change must lie."""
    written: list[tuple[str, int, Attr | None]] = []

    def write(path: str, ns: int, attr: Attr | None, create: bool) -> bool:
        written.append((path, ns, attr))
        return True

    times = DirTimes(write, delay_s=5.0)
    times.touch("/old", 1)
    before_new = time.monotonic()
    times.touch("/new", 2)
    times.defer("/new", Attr(stat.S_IFDIR | 0o751, 0, 0, 0, 0, 0, 0))
    assert times.flush(changed_before=before_new) == []
    assert [path for path, _, _ in written] == ["/old"]
    times.touch("/new", 3)        # a later change keeps the first one's time
    assert times.flush(changed_before=before_new) == []
    assert [path for path, _, _ in written] == ["/old"]
    assert times.flush() == []    # fsyncdir, rename, unmount: everything
    assert [(path, ns) for path, ns, _ in written] == [("/old", 1), ("/new", 3)]
    assert written[1][2] is not None and written[1][2].mode == stat.S_IFDIR | 0o751


def test_a_new_directory_is_created_once_with_the_attributes_it_got_meanwhile() -> None:
    """tar's mkdir, then (once it has filled the directory) its utimensat, chown and chmod of
    it: one write that creates the object, not a create and a metadata update; shown at once."""
    written: list[tuple[str, int, Attr | None, bool]] = []

    def write(path: str, ns: int, attr: Attr | None, create: bool) -> bool:
        written.append((path, ns, attr, create))
        return True

    times = DirTimes(write, delay_s=5.0, create_delay_s=1.0)
    times.create("/t", Attr(stat.S_IFDIR | 0o700, 0, 0, 0, 1, 1, 1, DIR_CONTENT_TYPE))
    times.create("/t/sub", Attr(stat.S_IFDIR | 0o700, 0, 0, 0, 1, 1, 1, DIR_CONTENT_TYPE))
    times.touch("/t/sub", 7)  # a file made in it
    taken = times.take("/t/sub")  # EdgeFS._change: chmod of it
    made = times.created("/t/sub")
    assert taken == 7 and made is not None and made.mode == stat.S_IFDIR | 0o700
    times.defer("/t/sub", Attr(stat.S_IFDIR | 0o751, 12, 34, 0, 5, 5, 5, DIR_CONTENT_TYPE))
    assert sorted(times.created_below("/t")) == ["/t/sub"] and times.created("/other") is None
    assert times.flush(changed_before=time.monotonic() - 5.0) == []  # a tick: not due yet
    assert written == []
    assert times.flush("/t/sub") == []  # fsync of it
    assert [(path, attr.mode if attr else None, create) for path, _, attr, create in written] == \
        [("/t/sub", stat.S_IFDIR | 0o751, True)]
    assert times.created("/t/sub") is None and times.created("/t") is not None
    times.forget("/t")  # rmdir: never written
    assert times.flush() == [] and len(written) == 1
