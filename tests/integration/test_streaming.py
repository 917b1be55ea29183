"""Big objects stream through the nodes: a 1 GiB object goes in and out while every node's
resident memory stays well under 100 MiB (a Pi has little RAM to spare)."""

from __future__ import annotations

import hashlib
import io
import os
import threading
from typing import Any

from conftest import make_s3

GIB = 1024 ** 3
RSS_LIMIT_BYTES = 100 * 1024 ** 2


class PatternFile(io.RawIOBase):
    """A seekable file of `size` bytes that exists nowhere: a random pattern whose length is
    not a multiple of the block size, so every block of the object is different."""

    def __init__(self, size: int) -> None:
        self._pattern = os.urandom(1024 * 1024 + 7)
        self._size = size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._size}[whence]
        self._pos = max(0, min(self._size, base + offset))
        return self._pos

    def read(self, n: int = -1) -> bytes:
        n = self._size - self._pos if n is None or n < 0 else min(n, self._size - self._pos)
        n = min(n, 4 * 1024 * 1024)
        out = bytearray()
        plen = len(self._pattern)
        while len(out) < n:
            start = (self._pos + len(out)) % plen
            out += self._pattern[start:start + n - len(out)]
        self._pos += n
        return bytes(out)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def __len__(self) -> int:
        return self._size


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class RssWatcher:
    """Samples the RSS of the node processes until stopped (a bounded background thread)."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.peak = {pid: 0 for pid in pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            for pid in self.pids:
                try:
                    self.peak[pid] = max(self.peak[pid], rss_bytes(pid))
                except OSError:
                    pass

    def __enter__(self) -> RssWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def test_one_gib_object_streams_in_and_out_with_bounded_memory(cluster: Any) -> None:
    s3 = make_s3(cluster.endpoint, *cluster.credentials)
    s3.create_bucket(Bucket="big")
    source = PatternFile(GIB)
    expected_md5 = hashlib.md5()
    while chunk := source.read(4 * 1024 * 1024):
        expected_md5.update(chunk)
    source.seek(0)
    pids = [cluster.pid(i) for i in range(cluster.nodes)]
    with RssWatcher(pids) as watcher:
        put = s3.put_object(Bucket="big", Key="one-gib", Body=source)
        assert put["ETag"] == f'"{expected_md5.hexdigest()}"'
        got = s3.get_object(Bucket="big", Key="one-gib")
        md5 = hashlib.md5()
        size = 0
        for chunk in got["Body"].iter_chunks(1024 * 1024):
            md5.update(chunk)
            size += len(chunk)
    assert size == GIB
    assert md5.hexdigest() == expected_md5.hexdigest()
    for pid, peak in watcher.peak.items():
        assert 0 < peak < RSS_LIMIT_BYTES, f"node {pid} peaked at {peak / 2**20:.0f} MiB"
