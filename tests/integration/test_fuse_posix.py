"""POSIX behaviour of `edgestore mount`: a bucket of a real 4-node cluster mounted with FUSE,
driven with ordinary system calls, and what it stored checked object by object with boto3."""

from __future__ import annotations

import base64
import ctypes
import errno
import hashlib
import json
import os
import random
import shutil
import stat
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from conftest import make_s3
from fusemount import LIBFUSES, edgestore_mount, libfuse_missing, loaded_libfuse
from mounts import fuse_unusable
from mounts import mounted as is_mount_point

MIB = 1024 * 1024
TTL_S = 0.5
AT_FDCWD = -100
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2  # <linux/fs.h>
pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def boto(cluster: Any) -> Any:
    return make_s3(cluster.endpoint, *cluster.credentials)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test on a libfuse 3 mount (the default); those marked ``libfuse2`` on a libfuse 2
    mount too: the calls where the two differ (O_TRUNC, rename, setattr, permissions), not
    the slow ones, so that the suite does not take twice as long."""
    if "mounted" in metafunc.fixturenames:
        both = metafunc.definition.get_closest_marker("libfuse2") is not None
        metafunc.parametrize("mounted", LIBFUSES if both else LIBFUSES[:1], indirect=True, scope="module",
                             ids=[f"libfuse{major}" for major in (LIBFUSES if both else LIBFUSES[:1])])


@pytest.fixture(scope="module")
def mounted(cluster: Any, boto: Any, request: pytest.FixtureRequest) -> Iterator[tuple[Path, str]]:
    """The mount (bucket ``posixN-PID``) with the libfuse of the test's parameter."""
    reason = fuse_unusable() or libfuse_missing(request.param)
    if reason:
        pytest.skip(f"the mount needs FUSE: {reason}")
    bucket = f"posix{request.param}-{os.getpid()}"
    boto.create_bucket(Bucket=bucket)
    # Outside pytest's private tmp dir, so that another user can reach the mount point.
    home = Path(tempfile.mkdtemp(prefix="edgestore-fuse-"))
    home.chmod(0o755)
    try:
        with edgestore_mount(cluster, bucket, home, "--ttl", str(TTL_S), "--libfuse", request.param) as (mnt, proc):
            assert loaded_libfuse(proc.pid) == int(request.param)
            yield mnt, bucket
    finally:
        if not is_mount_point(home / "mnt"):  # never delete through a mount that is still there
            shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def here(mounted: tuple[Path, str], request: pytest.FixtureRequest) -> tuple[Path, str]:
    """A fresh directory of the mount for one test, and its key prefix."""
    mnt, _ = mounted
    name = request.node.name[:60]
    (mnt / name).mkdir()
    fd = os.open(mnt / name, os.O_RDONLY | os.O_DIRECTORY)
    try:  # its object stored now (else within the TTL): the tests compare the bucket's keys
        os.fsync(fd)
    finally:
        os.close(fd)
    return mnt / name, name + "/"


@pytest.fixture
def libfuse(request: pytest.FixtureRequest) -> str:
    """The major version of the libfuse the test's mount uses ("3" or "2")."""
    return str(request.node.callspec.params["mounted"])


def body_of(boto: Any, bucket: str, key: str) -> bytes:
    return bytes(boto.get_object(Bucket=bucket, Key=key)["Body"].read())


def keys_of(boto: Any, bucket: str, prefix: str) -> set[str]:
    pages = boto.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {c["Key"] for page in pages for c in page.get("Contents", [])}


def errno_of(call: Any, *args: Any) -> int:
    with pytest.raises(OSError) as info:
        call(*args)
    return int(info.value.errno or 0)


# -- files ----------------------------------------------------------------------------------


@pytest.mark.libfuse2
def test_create_and_read_back_with_s3fs_metadata(mounted: tuple[Path, str], here: tuple[Path, str],
                                                 boto: Any) -> None:
    _, bucket = mounted
    d, prefix = here
    small, big = b"hello mount\n", os.urandom(20 * MIB + 5)
    (d / "small.txt").write_bytes(small)
    with open(d / "big.bin", "wb") as f:
        for i in range(0, len(big), MIB):
            f.write(big[i:i + MIB])
    assert (d / "small.txt").read_bytes() == small
    assert hashlib.sha256((d / "big.bin").read_bytes()).digest() == hashlib.sha256(big).digest()
    assert (d / "big.bin").stat().st_size == len(big)
    with open(d / "big.bin", "rb") as f:  # a ranged read in the middle
        f.seek(13 * MIB + 7)
        assert f.read(100_000) == big[13 * MIB + 7:13 * MIB + 7 + 100_000]
    assert body_of(boto, bucket, prefix + "small.txt") == small
    assert hashlib.sha256(body_of(boto, bucket, prefix + "big.bin")).digest() == hashlib.sha256(big).digest()
    head = boto.head_object(Bucket=bucket, Key=prefix + "small.txt")
    meta = head["Metadata"]
    assert int(meta["mode"]) == stat.S_IFREG | 0o644
    assert (int(meta["uid"]), int(meta["gid"])) == (os.getuid(), os.getgid())
    assert abs(float(meta["mtime"]) - time.time()) < 60
    assert head["ContentType"] == "text/plain"
    marker = boto.head_object(Bucket=bucket, Key=prefix)
    assert marker["ContentType"] == "application/x-directory"
    assert stat.S_ISDIR(int(marker["Metadata"]["mode"]))


@pytest.mark.libfuse2
def test_overwrite_in_the_middle_append_and_o_append(mounted: tuple[Path, str], here: tuple[Path, str],
                                                     boto: Any) -> None:
    _, bucket = mounted
    d, prefix = here
    (d / "f").write_bytes(b"0123456789")
    with open(d / "f", "r+b") as f:
        f.seek(3)
        f.write(b"abc")
    assert (d / "f").read_bytes() == b"012abc6789"
    with open(d / "f", "ab") as f:
        f.write(b"XY")
    fd = os.open(d / "f", os.O_WRONLY | os.O_APPEND)
    try:
        os.pwrite(fd, b"Z", 0)  # O_APPEND wins over the offset, as on Linux
    finally:
        os.close(fd)
    assert (d / "f").read_bytes() == b"012abc6789XYZ"
    assert body_of(boto, bucket, prefix + "f") == b"012abc6789XYZ"


def test_overwrite_in_the_middle_of_a_large_file_keeps_the_rest(mounted: tuple[Path, str], here: tuple[Path, str],
                                                                boto: Any) -> None:
    """Multipart: the untouched parts are server-side copies of the old object."""
    _, bucket = mounted
    d, prefix = here
    data = bytearray(os.urandom(30 * MIB))
    (d / "large").write_bytes(data)
    with open(d / "large", "r+b") as f:
        f.seek(17 * MIB + 3)
        f.write(b"middle")
    data[17 * MIB + 3:17 * MIB + 9] = b"middle"
    assert hashlib.sha256(body_of(boto, bucket, prefix + "large")).digest() == hashlib.sha256(data).digest()
    assert hashlib.sha256((d / "large").read_bytes()).digest() == hashlib.sha256(data).digest()


def test_reads_in_any_order_answer_the_objects_bytes_and_local_changes(mounted: tuple[Path, str],
                                                                        here: tuple[Path, str], boto: Any) -> None:
    """Random reads of many sizes, a sequential reader on a second handle meanwhile, then a
    change in the middle of the file: the bytes fetched around it never cover the change."""
    _, bucket = mounted
    d, prefix = here
    data = bytearray(os.urandom(20 * MIB))
    (d / "object").write_bytes(bytes(data))  # uploaded at close: the reads below fetch it
    rng = random.Random(6)
    with open(d / "object", "rb") as a, open(d / "object", "rb") as b:
        for step in range(200):
            offset, size = rng.randrange(len(data)), rng.choice([1, 4096, 100_000, 3 * MIB])
            assert os.pread(a.fileno(), size, offset) == data[offset:offset + size]
            if step % 20 == 0:
                assert b.read(MIB) == data[step // 20 * MIB:(step // 20 + 1) * MIB]
        assert b.read() == data[10 * MIB:]
    with open(d / "object", "r+b") as f:
        os.pwrite(f.fileno(), b"local", 12 * MIB + 7)
        data[12 * MIB + 7:12 * MIB + 12] = b"local"
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)  # read through the mount, not the page cache
        assert os.pread(f.fileno(), 4 * MIB, 10 * MIB) == data[10 * MIB:14 * MIB]
        f.seek(0)
        assert f.read() == data
    assert body_of(boto, bucket, prefix + "object") == data


@pytest.mark.libfuse2
def test_truncate_shrinks_and_grows_with_zeros(mounted: tuple[Path, str], here: tuple[Path, str], boto: Any) -> None:
    _, bucket = mounted
    d, prefix = here
    (d / "t").write_bytes(b"abcdefghij")
    os.truncate(d / "t", 4)
    assert (d / "t").read_bytes() == b"abcd"
    with open(d / "t", "r+b") as f:
        f.truncate(8)
    assert (d / "t").read_bytes() == b"abcd\0\0\0\0"
    assert body_of(boto, bucket, prefix + "t") == b"abcd\0\0\0\0"
    with open(d / "t", "wb") as f:  # O_TRUNC
        f.write(b"new")
    assert body_of(boto, bucket, prefix + "t") == b"new"


def test_pwrite_past_the_end_leaves_a_hole_of_zeros(mounted: tuple[Path, str], here: tuple[Path, str],
                                                    boto: Any) -> None:
    _, bucket = mounted
    d, prefix = here
    fd = os.open(d / "holes", os.O_CREAT | os.O_RDWR, 0o644)
    try:
        os.pwrite(fd, b"start", 0)
        os.pwrite(fd, b"end", 3 * MIB)
        assert os.fstat(fd).st_size == 3 * MIB + 3
        assert os.pread(fd, 10, 2 * MIB) == bytes(10)
    finally:
        os.close(fd)
    expected = b"start" + bytes(3 * MIB - 5) + b"end"
    assert (d / "holes").read_bytes() == expected
    assert body_of(boto, bucket, prefix + "holes") == expected


@pytest.mark.libfuse2
def test_o_excl_on_an_existing_file_is_eexist(here: tuple[Path, str]) -> None:
    d, _ = here
    (d / "x").write_bytes(b"x")
    assert errno_of(os.open, d / "x", os.O_CREAT | os.O_EXCL | os.O_WRONLY) == errno.EEXIST
    fd = os.open(d / "y", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    os.close(fd)
    assert stat.S_IMODE((d / "y").stat().st_mode) == 0o600


@pytest.mark.libfuse2
def test_unlink_of_an_open_file_keeps_it_readable(mounted: tuple[Path, str], here: tuple[Path, str],
                                                  boto: Any) -> None:
    _, bucket = mounted
    d, prefix = here
    data = os.urandom(3 * MIB)
    (d / "gone").write_bytes(data)
    with open(d / "gone", "rb") as f:
        assert f.read(10) == data[:10]
        os.unlink(d / "gone")
        assert not (d / "gone").exists()
        assert "gone" not in os.listdir(d)
        assert prefix + "gone" not in keys_of(boto, bucket, prefix)
        assert f.read() == data[10:]
        assert os.fstat(f.fileno()).st_size == len(data)
    assert prefix + "gone" not in keys_of(boto, bucket, prefix)


def test_fsync_returns_when_another_node_can_read_it(cluster: Any, mounted: tuple[Path, str],
                                                     here: tuple[Path, str]) -> None:
    _, bucket = mounted
    d, prefix = here
    other = make_s3(cluster.url(2), *cluster.credentials)
    with open(d / "durable", "wb") as f:
        f.write(b"written before fsync")
        f.flush()
        os.fsync(f.fileno())
        # Still open: only fsync can have stored it.
        assert body_of(other, bucket, prefix + "durable") == b"written before fsync"


# -- directories ----------------------------------------------------------------------------


@pytest.mark.libfuse2
def test_directory_errors_are_those_of_a_local_filesystem(here: tuple[Path, str]) -> None:
    d, _ = here
    (d / "sub").mkdir()
    (d / "sub" / "f").write_bytes(b"f")
    (d / "file").write_bytes(b"file")
    assert errno_of(os.rmdir, d / "sub") == errno.ENOTEMPTY
    assert errno_of(os.rmdir, d / "missing") == errno.ENOENT
    assert errno_of(os.stat, d / "missing") == errno.ENOENT
    assert errno_of(os.mkdir, d / "sub") == errno.EEXIST
    assert errno_of(os.mkdir, d / "file") == errno.EEXIST  # a file and a directory never share a name
    assert errno_of(os.open, d / "file", os.O_CREAT | os.O_EXCL | os.O_WRONLY) == errno.EEXIST
    assert errno_of(os.open, d / "sub", os.O_WRONLY) == errno.EISDIR
    assert errno_of(os.unlink, d / "sub") == errno.EISDIR
    assert errno_of(os.rmdir, d / "file") == errno.ENOTDIR
    assert errno_of(os.open, d / "file" / "below", os.O_CREAT | os.O_WRONLY) == errno.ENOTDIR
    assert errno_of(os.mkdir, d / "missing" / "below") == errno.ENOENT
    os.unlink(d / "sub" / "f")
    os.rmdir(d / "sub")
    assert sorted(os.listdir(d)) == ["file"]


def test_names_over_255_bytes_are_enametoolong(here: tuple[Path, str]) -> None:
    d, _ = here
    ok, long = "n" * 255, "n" * 256
    (d / ok).write_bytes(b"ok")
    assert (d / ok).read_bytes() == b"ok"
    assert errno_of(os.open, d / long, os.O_CREAT | os.O_WRONLY) == errno.ENAMETOOLONG
    assert errno_of(os.mkdir, d / long) == errno.ENAMETOOLONG
    assert errno_of(os.stat, d / long) == errno.ENAMETOOLONG
    assert errno_of(os.rename, d / ok, d / long) == errno.ENAMETOOLONG
    assert errno_of(os.open, d / ("é" * 128), os.O_CREAT | os.O_WRONLY) == errno.ENAMETOOLONG  # 256 bytes


def test_keys_of_other_clients_make_implicit_directories(mounted: tuple[Path, str], here: tuple[Path, str],
                                                         boto: Any) -> None:
    _, bucket = mounted
    d, prefix = here
    boto.put_object(Bucket=bucket, Key=prefix + "foreign/2024/photo.jpg", Body=b"jpeg")
    boto.put_object(Bucket=bucket, Key=prefix + "foreign/readme", Body=b"read me")
    time.sleep(TTL_S * 2)  # the listing of `d` cached before the keys came is stale
    assert sorted(os.listdir(d)) == ["foreign"]
    assert sorted(os.listdir(d / "foreign")) == ["2024", "readme"]
    assert (d / "foreign" / "2024").is_dir()
    assert (d / "foreign" / "2024" / "photo.jpg").read_bytes() == b"jpeg"
    assert errno_of(os.rmdir, d / "foreign") == errno.ENOTEMPTY


# -- rename ---------------------------------------------------------------------------------


@pytest.mark.libfuse2
def test_rename_of_a_file_replaces_the_target(mounted: tuple[Path, str], here: tuple[Path, str], boto: Any) -> None:
    _, bucket = mounted
    d, prefix = here
    (d / "a").write_bytes(b"content of a")
    (d / "b").write_bytes(b"old b")
    os.chmod(d / "a", 0o600)
    os.rename(d / "a", d / "b")
    assert sorted(os.listdir(d)) == ["b"]
    assert (d / "b").read_bytes() == b"content of a"
    assert stat.S_IMODE((d / "b").stat().st_mode) == 0o600
    assert keys_of(boto, bucket, prefix) == {prefix, prefix + "b"}
    assert body_of(boto, bucket, prefix + "b") == b"content of a"


@pytest.mark.libfuse2
def test_rename_errors(here: tuple[Path, str]) -> None:
    d, _ = here
    (d / "dir" / "inner").mkdir(parents=True)
    (d / "full" / "x").mkdir(parents=True)
    (d / "file").write_bytes(b"f")
    assert errno_of(os.rename, d / "dir", d / "full") == errno.ENOTEMPTY
    assert errno_of(os.rename, d / "dir", d / "file") == errno.ENOTDIR
    assert errno_of(os.rename, d / "file", d / "dir") == errno.EISDIR
    assert errno_of(os.rename, d / "missing", d / "other") == errno.ENOENT
    assert errno_of(os.rename, d / "dir", d / "dir" / "inner" / "deeper") == errno.EINVAL
    os.rename(d / "dir", d / "full" / "x")  # onto an empty directory: replaces it
    assert os.listdir(d / "full" / "x") == ["inner"]


def renameat2(old: Path, new: Path, flags: int) -> int:
    """renameat2(2): 0, or the errno it failed with."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.renameat2(AT_FDCWD, os.fsencode(old), AT_FDCWD, os.fsencode(new), flags) == 0:
        return 0
    return ctypes.get_errno()


@pytest.mark.libfuse2
def test_renameat2_noreplace_never_replaces_and_exchange_is_refused(here: tuple[Path, str], libfuse: str) -> None:
    """libfuse 3 passes renameat2's flags to the mount, and mfusepy dropped them: an exchange
    became a plain rename that lost the target. libfuse 2 passes none, and the kernel
    answers EINVAL for any flag (mv then checks for the target itself); the kernel finds an
    existing target for RENAME_NOREPLACE itself."""
    d, _ = here
    (d / "a").write_bytes(b"content of a")
    (d / "b").write_bytes(b"content of b")
    assert renameat2(d / "a", d / "b", RENAME_EXCHANGE) == errno.EINVAL
    assert renameat2(d / "a", d / "b", RENAME_NOREPLACE) == errno.EEXIST
    assert (d / "a").read_bytes() == b"content of a" and (d / "b").read_bytes() == b"content of b"
    assert renameat2(d / "a", d / "c", RENAME_NOREPLACE) == (0 if libfuse == "3" else errno.EINVAL)
    if libfuse == "3":
        assert sorted(os.listdir(d)) == ["b", "c"] and (d / "c").read_bytes() == b"content of a"


@pytest.mark.libfuse2
def test_a_long_directory_lists_every_entry_once_with_its_type_and_size(mounted: tuple[Path, str],
                                                                         here: tuple[Path, str], boto: Any) -> None:
    """More entries than one reply to the kernel holds (it asks again from where the last
    reply stopped); with libfuse 3 the entries carry their attributes (readdirplus), which
    the kernel then uses for lstat: they must be the files' own."""
    _, bucket = mounted
    d, prefix = here
    sizes = {f"{'n' * (i % 40)}{i:03d}.dat": i * 7 for i in range(300)}
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda kv: boto.put_object(Bucket=bucket, Key=prefix + kv[0], Body=b"x" * kv[1]),
                      sizes.items()))
    boto.put_object(Bucket=bucket, Key=prefix + "sub/inner", Body=b"inner")
    os.symlink("000.dat", d / "link")
    time.sleep(TTL_S * 2)
    with os.scandir(d) as listing:
        entries = list(listing)
    names = [e.name for e in entries]
    assert len(names) == len(set(names)) and set(names) == {*sizes, "sub", "link"}
    for entry in entries:
        if entry.name == "sub":
            assert entry.is_dir(follow_symlinks=False)
        elif entry.name == "link":
            assert entry.is_symlink() and not entry.is_file(follow_symlinks=False)
        else:
            assert entry.is_file(follow_symlinks=False) and not entry.is_symlink()
            assert entry.stat(follow_symlinks=False).st_size == sizes[entry.name], entry.name


def test_rename_of_a_directory_of_1000_files(mounted: tuple[Path, str], here: tuple[Path, str], boto: Any) -> None:
    _, bucket = mounted
    d, prefix = here
    (d / "src" / "nested").mkdir(parents=True)
    names = [f"src/f{i:04d}" for i in range(990)] + [f"src/nested/g{i}" for i in range(10)]
    with ThreadPoolExecutor(8) as pool:  # written through S3, faster than 1000 closes
        list(pool.map(lambda n: boto.put_object(Bucket=bucket, Key=prefix + n, Body=n.encode()), names))
    time.sleep(TTL_S * 2)
    assert len(os.listdir(d / "src")) == 991
    started = time.monotonic()
    os.rename(d / "src", d / "dst")
    took = time.monotonic() - started
    assert took < 90, f"rename took {took:.1f} s"
    assert not (d / "src").exists()
    assert len(os.listdir(d / "dst")) == 991
    assert (d / "dst" / "f0500").read_bytes() == b"src/f0500"
    assert (d / "dst" / "nested" / "g3").read_bytes() == b"src/nested/g3"
    keys = keys_of(boto, bucket, prefix)
    assert not any(k.startswith(prefix + "src/") for k in keys)
    assert {prefix + "dst/" + n[len("src/"):] for n in names} <= keys


# -- links and metadata ---------------------------------------------------------------------


def test_symlinks(mounted: tuple[Path, str], here: tuple[Path, str], boto: Any) -> None:
    _, bucket = mounted
    d, prefix = here
    (d / "target.txt").write_bytes(b"pointed at")
    os.symlink("target.txt", d / "link")
    os.symlink("/nowhere/at/all", d / "dangling")
    assert os.readlink(d / "link") == "target.txt"
    assert stat.S_ISLNK(os.lstat(d / "link").st_mode)
    assert (d / "link").read_bytes() == b"pointed at"
    assert os.readlink(d / "dangling") == "/nowhere/at/all"
    assert not (d / "dangling").exists()
    assert body_of(boto, bucket, prefix + "link") == b"target.txt"
    assert stat.S_ISLNK(int(boto.head_object(Bucket=bucket, Key=prefix + "link")["Metadata"]["mode"]))
    os.rename(d / "link", d / "link2")
    assert os.readlink(d / "link2") == "target.txt"


@pytest.mark.libfuse2
def test_chmod_chown_and_utimensat_are_kept_with_nanoseconds(mounted: tuple[Path, str], here: tuple[Path, str],
                                                             boto: Any) -> None:
    _, bucket = mounted
    d, prefix = here
    f = d / "meta"
    f.write_bytes(b"keep these bytes")
    os.chmod(f, 0o640)
    os.chown(f, 1234, 5678)
    atime_ns, mtime_ns = 1_600_000_000_123_456_789, 1_700_000_000_987_654_321
    os.utime(f, ns=(atime_ns, mtime_ns))
    (d / "sub").mkdir()
    os.chmod(d / "sub", 0o700)
    os.utime(d / "sub", ns=(atime_ns, mtime_ns))
    time.sleep(TTL_S * 2)  # from the server, not the cache
    st = os.stat(f)
    assert stat.S_IMODE(st.st_mode) == 0o640
    assert (st.st_uid, st.st_gid) == (1234, 5678)
    assert (st.st_atime_ns, st.st_mtime_ns) == (atime_ns, mtime_ns)
    assert st.st_ctime_ns > mtime_ns
    sub = os.stat(d / "sub")
    assert stat.S_IMODE(sub.st_mode) == 0o700 and sub.st_mtime_ns == mtime_ns
    meta = boto.head_object(Bucket=bucket, Key=prefix + "meta")["Metadata"]
    assert meta["mode"] == str(stat.S_IFREG | 0o640)
    assert (meta["uid"], meta["gid"]) == ("1234", "5678")
    assert meta["mtime"] == "1700000000.987654321"
    assert f.read_bytes() == b"keep these bytes"
    os.utime(f, ns=(atime_ns, 1_700_000_000_000_000_000))  # whole seconds: written as s3fs does
    assert boto.head_object(Bucket=bucket, Key=prefix + "meta")["Metadata"]["mtime"] == "1700000000"


def test_extended_attributes_are_kept_in_the_objects_metadata_as_s3fs_keeps_them(
        mounted: tuple[Path, str], here: tuple[Path, str], boto: Any) -> None:
    _, bucket = mounted
    d, prefix = here
    f = d / "tagged"
    f.write_bytes(b"data")
    os.setxattr(f, "user.color", b"blue")
    os.setxattr(f, "user.raw", bytes(range(64)))
    (d / "sub").mkdir()
    os.setxattr(d / "sub", "user.dir", b"yes")
    assert errno_of(os.setxattr, f, "user.color", b"red", os.XATTR_CREATE) == errno.EEXIST
    assert errno_of(os.setxattr, f, "user.none", b"x", os.XATTR_REPLACE) == errno.ENODATA
    assert errno_of(os.getxattr, f, "user.none") == errno.ENODATA
    os.removexattr(f, "user.raw")
    assert errno_of(os.removexattr, f, "user.raw") == errno.ENODATA
    time.sleep(TTL_S * 2)  # from the server, not the cache
    assert os.listxattr(f) == ["user.color"]
    assert os.getxattr(f, "user.color") == b"blue"
    assert os.getxattr(d / "sub", "user.dir") == b"yes"
    assert f.read_bytes() == b"data"
    stored = boto.head_object(Bucket=bucket, Key=prefix + "tagged")["Metadata"]["xattr"]
    assert json.loads(urllib.parse.unquote(stored)) == {"user.color": base64.b64encode(b"blue").decode()}


@pytest.mark.libfuse2
def test_modes_are_enforced_for_another_user(here: tuple[Path, str]) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to act as another user")
    d, _ = here
    (d / "private").write_bytes(b"secret")
    os.chmod(d / "private", 0o600)
    (d / "public").write_bytes(b"open")
    os.chmod(d / "public", 0o644)
    os.chmod(d, 0o755)

    def as_nobody(code: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["python3", "-c", code], user=65534, group=65534, capture_output=True, text=True,
                              timeout=30, stdin=subprocess.DEVNULL)

    assert as_nobody(f"print(open({str(d / 'public')!r}).read())").stdout.strip() == "open"
    denied = as_nobody(f"print(open({str(d / 'private')!r}).read())")
    assert denied.returncode != 0 and "PermissionError" in denied.stderr
    write = as_nobody(f"open({str(d / 'new')!r}, 'w')")
    assert write.returncode != 0 and "PermissionError" in write.stderr


@pytest.mark.libfuse2
def test_chown_and_a_write_by_another_user_clear_setuid_and_setgid(here: tuple[Path, str]) -> None:
    """As on a local filesystem. libfuse 3 would leave it to the mount (handle_killpriv),
    which does not do it: the mount has the kernel do it, as with libfuse 2."""
    if os.geteuid() != 0:
        pytest.skip("needs root to chown and to act as another user")
    d, _ = here
    os.chmod(d, 0o755)
    (d / "program").write_bytes(b"#!/bin/sh\n")
    os.chmod(d / "program", 0o6755)
    os.chown(d / "program", 1234, 1234)
    assert stat.S_IMODE(os.stat(d / "program").st_mode) == 0o755
    (d / "shared").write_bytes(b"first\n")
    os.chmod(d / "shared", 0o6777)
    appended = subprocess.run(["python3", "-c", f"open({str(d / 'shared')!r}, 'ab').write(b'second')"],
                              user=65534, group=65534, capture_output=True, text=True, timeout=30,
                              stdin=subprocess.DEVNULL)
    assert appended.returncode == 0, appended.stderr
    assert stat.S_IMODE(os.stat(d / "shared").st_mode) == 0o777
    assert (d / "shared").read_bytes() == b"first\nsecond"


def test_parent_times_change_on_create_unlink_and_rename(here: tuple[Path, str]) -> None:
    d, _ = here
    (d / "sub").mkdir()
    old = 1_500_000_000_000_000_000
    for step in (lambda: (d / "sub" / "new").write_bytes(b"n"),
                 lambda: os.rename(d / "sub" / "new", d / "sub" / "renamed"),
                 lambda: os.unlink(d / "sub" / "renamed")):
        os.utime(d / "sub", ns=(old, old))
        before = os.stat(d / "sub")
        assert before.st_mtime_ns == old
        step()
        after = os.stat(d / "sub")
        assert after.st_mtime_ns > old and after.st_ctime_ns >= after.st_mtime_ns - 1_000_000_000


def test_parent_time_is_stored_in_the_directory_object(mounted: tuple[Path, str], here: tuple[Path, str],
                                                       boto: Any) -> None:
    _, bucket = mounted
    d, prefix = here
    (d / "sub").mkdir()
    os.utime(d / "sub", ns=(10**18, 10**18))
    (d / "sub" / "f").write_bytes(b"f")
    deadline = time.monotonic() + 10
    stored = 0.0
    while time.monotonic() < deadline:
        try:  # (a new directory's object is written within the TTL, with its times)
            stored = float(boto.head_object(Bucket=bucket, Key=prefix + "sub/")["Metadata"]["mtime"])
        except boto.exceptions.ClientError as exc:
            if exc.response["Error"]["Code"] not in ("404", "NoSuchKey"):
                raise
        if stored > 10**9 + 1:
            break
        time.sleep(0.2)
    assert stored > time.time() - 60


def test_statfs_answers_the_clusters_capacity(mounted: tuple[Path, str]) -> None:
    mnt, _ = mounted
    st = os.statvfs(mnt)
    total = st.f_blocks * st.f_frsize
    assert 0 < total < 1 << 50  # the cluster's disks, not the "unknown" constant
    assert 0 < st.f_bavail <= st.f_blocks
    assert st.f_namemax == 255
