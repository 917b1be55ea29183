"""s3fs-fuse (Debian's `s3fs`, 1.90 on bookworm) mounting a bucket of a real cluster,
path-style over HTTP, and ordinary file operations through the mount, checked object by
object with boto3.

What s3fs sends: for each name it looks up, HEAD `key`, HEAD `key/`, HEAD `key_$folder$` and a
ListObjects with `prefix=key/&delimiter=/&max-keys=2` (the `/` not percent-encoded); a new
file is first a 0-byte PUT, then the whole file again on close (a multipart upload for large
files; parts with `Expect: 100-continue`); `mkdir` PUTs a `dir/` marker with
`Content-Type: application/x-directory`; uid, gid, mode, atime, mtime and ctime travel as
`x-amz-meta-*`. chmod, chown, utimens and rename are CopyObjects (onto itself with
`x-amz-metadata-directive: REPLACE` for metadata; rename = copy + DELETE). Appending to a
large file (20 MiB here; not at 6 MiB, which is downloaded and PUT whole) is a multipart
upload whose unchanged prefix is an UploadPartCopy with `x-amz-copy-source-range`."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest
from conftest import make_s3
from mounts import fuse_unusable, take_down, wait_mounted

S3FS = shutil.which("s3fs")
if S3FS is None:
    pytest.skip("s3fs-fuse is not installed (apt-get install s3fs)", allow_module_level=True)

MOUNT_TIMEOUT_S = 20.0
MIB = 1024 * 1024
# A file operation stuck in FUSE fails its test (and the fixture still unmounts) well before
# the suite-wide 600 s.
pytestmark = pytest.mark.timeout(180)



@pytest.fixture(scope="module")
def boto(cluster: Any) -> Any:
    return make_s3(cluster.endpoint, *cluster.credentials)


@pytest.fixture(scope="module")
def fs(cluster: Any, boto: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A bucket mounted with s3fs in the foreground (-f) for the whole module; unmounted after."""
    reason = fuse_unusable()
    if reason:
        pytest.skip(f"s3fs needs FUSE: {reason}")
    assert S3FS is not None
    home = tmp_path_factory.mktemp("s3fs")
    bucket = f"s3fs-{os.getpid()}"
    boto.create_bucket(Bucket=bucket)
    access_key, secret_key = cluster.credentials
    passwd = home / "passwd"
    passwd.write_text(f"{access_key}:{secret_key}\n")
    passwd.chmod(0o600)  # s3fs refuses a password file others can read
    mountpoint = home / "mnt"
    mountpoint.mkdir()
    options = ",".join([
        f"passwd_file={passwd}",
        f"url={cluster.endpoint}",
        "use_path_request_style",
        "endpoint=us-east-1",
        "connect_timeout=10",
        "readwrite_timeout=60",
        "retries=2",
        "dbglevel=warn",
    ])
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS")}
    env["HOME"] = str(home)
    log = open(home / "s3fs.log", "wb")
    proc = subprocess.Popen([S3FS, bucket, str(mountpoint), "-f", "-o", options], env=env, stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_mounted(mountpoint, proc, home / "s3fs.log", "s3fs", MOUNT_TIMEOUT_S)
        yield mountpoint, bucket
    finally:
        log.close()
        take_down(mountpoint, proc)


def keys_of(boto: Any, bucket: str, prefix: str = "") -> dict[str, int]:
    pages = boto.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {c["Key"]: c["Size"] for page in pages for c in page.get("Contents", [])}


def body_of(boto: Any, bucket: str, key: str) -> bytes:
    return bytes(boto.get_object(Bucket=bucket, Key=key)["Body"].read())


# -- files --------------------------------------------------------------------------------


def test_write_small_and_12_mib_files_and_read_them_back(fs: tuple[Path, str], boto: Any) -> None:
    mnt, bucket = fs
    d = mnt / "files"
    d.mkdir()
    small = b"hello through s3fs\n"
    big = os.urandom(12 * MIB + 3)
    (d / "small.txt").write_bytes(small)
    with open(d / "big.bin", "wb") as f:  # written in pieces, as an application would
        for i in range(0, len(big), MIB):
            f.write(big[i:i + MIB])
    (d / "empty").write_bytes(b"")

    assert (d / "small.txt").read_bytes() == small
    assert (d / "big.bin").read_bytes() == big
    assert (d / "big.bin").stat().st_size == len(big)
    with open(d / "big.bin", "rb") as f:
        f.seek(11 * MIB)
        assert f.read(MIB) == big[11 * MIB:12 * MIB]

    assert keys_of(boto, bucket, "files") == {"files/": 0, "files/small.txt": len(small), "files/big.bin": len(big),
                                             "files/empty": 0}
    assert body_of(boto, bucket, "files/small.txt") == small
    assert hashlib.sha256(body_of(boto, bucket, "files/big.bin")).digest() == hashlib.sha256(big).digest()
    head = boto.head_object(Bucket=bucket, Key="files/small.txt")
    assert head["ETag"] == f'"{hashlib.md5(small).hexdigest()}"'
    assert head["ContentType"] == "text/plain"
    assert stat.S_ISREG(int(head["Metadata"]["mode"]))
    assert boto.head_object(Bucket=bucket, Key="files/")["ContentType"] == "application/x-directory"


def test_overwrite_and_truncate(fs: tuple[Path, str], boto: Any) -> None:
    mnt, bucket = fs
    (mnt / "over.txt").write_bytes(b"first version, quite long\n")
    (mnt / "over.txt").write_bytes(b"second\n")
    assert body_of(boto, bucket, "over.txt") == b"second\n"
    # ftruncate on an open file, as `truncate -s` and applications do. truncate(2) by path
    # (os.truncate) makes s3fs 1.90 (bookworm) upload NUL bytes instead of the kept prefix:
    # its own bug, the PUT's signed payload hash is that of b"\0\0\0".
    with open(mnt / "over.txt", "r+b") as f:
        f.truncate(3)
    assert body_of(boto, bucket, "over.txt") == b"sec"
    assert (mnt / "over.txt").read_bytes() == b"sec"


def test_append_to_a_large_file(fs: tuple[Path, str], boto: Any) -> None:
    """s3fs keeps the unchanged start with an UploadPartCopy and uploads only the new part."""
    mnt, bucket = fs
    body = os.urandom(20 * MIB)
    (mnt / "log.bin").write_bytes(body)
    with open(mnt / "log.bin", "ab") as f:
        f.write(b"appended line\n")
    expected = body + b"appended line\n"
    assert (mnt / "log.bin").read_bytes() == expected
    assert hashlib.sha256(body_of(boto, bucket, "log.bin")).digest() == hashlib.sha256(expected).digest()


# -- directories --------------------------------------------------------------------------


def test_subdirectories_listing_and_delete(fs: tuple[Path, str], boto: Any) -> None:
    mnt, bucket = fs
    top = mnt / "tree"
    (top / "sub" / "deeper").mkdir(parents=True)
    (top / "a.txt").write_bytes(b"a")
    (top / "sub" / "b.txt").write_bytes(b"bb")
    (top / "sub" / "deeper" / "c.txt").write_bytes(b"ccc")
    assert sorted(os.listdir(top)) == ["a.txt", "sub"]
    assert sorted(os.listdir(top / "sub")) == ["b.txt", "deeper"]
    assert (top / "sub").is_dir() and (top / "sub" / "b.txt").is_file()
    assert [(p.relative_to(top).as_posix(), p.stat().st_size) for p in sorted(top.rglob("*")) if p.is_file()] == [
        ("a.txt", 1), ("sub/b.txt", 2), ("sub/deeper/c.txt", 3)]
    assert keys_of(boto, bucket, "tree/") == {"tree/": 0, "tree/a.txt": 1, "tree/sub/": 0, "tree/sub/b.txt": 2,
                                             "tree/sub/deeper/": 0, "tree/sub/deeper/c.txt": 3}

    (top / "a.txt").unlink()
    assert not (top / "a.txt").exists()
    with pytest.raises(OSError):
        (top / "sub").rmdir()  # not empty
    (top / "sub" / "deeper" / "c.txt").unlink()
    (top / "sub" / "deeper").rmdir()
    assert sorted(os.listdir(top / "sub")) == ["b.txt"]
    assert keys_of(boto, bucket, "tree/") == {"tree/": 0, "tree/sub/": 0, "tree/sub/b.txt": 2}
    shutil.rmtree(top)
    assert keys_of(boto, bucket, "tree") == {}
    assert "tree" not in os.listdir(mnt)


def test_objects_put_by_another_client_show_up(fs: tuple[Path, str], boto: Any) -> None:
    """Keys with no directory markers: s3fs makes directories out of the common prefixes."""
    mnt, bucket = fs
    boto.put_object(Bucket=bucket, Key="foreign/2024/photo.jpg", Body=b"jpeg")
    boto.put_object(Bucket=bucket, Key="foreign/readme", Body=b"read me")
    assert sorted(os.listdir(mnt / "foreign")) == ["2024", "readme"]
    assert (mnt / "foreign" / "2024").is_dir()
    assert (mnt / "foreign" / "2024" / "photo.jpg").read_bytes() == b"jpeg"
    assert (mnt / "foreign" / "readme").read_bytes() == b"read me"


# -- metadata: CopyObject -----------------------------------------------------------------


def test_chmod_and_utime_update_metadata_in_place(fs: tuple[Path, str], boto: Any) -> None:
    mnt, bucket = fs
    path = mnt / "meta.txt"
    path.write_bytes(b"keep these bytes")
    path.chmod(0o640)
    stamp = 1577836800  # 2020-01-01T00:00:00Z
    os.utime(path, (stamp, stamp))
    st = path.stat()
    assert stat.S_IMODE(st.st_mode) == 0o640 and int(st.st_mtime) == stamp
    head = boto.head_object(Bucket=bucket, Key="meta.txt")
    assert int(head["Metadata"]["mode"]) == stat.S_IFREG | 0o640
    assert int(head["Metadata"]["mtime"]) == stamp
    assert body_of(boto, bucket, "meta.txt") == b"keep these bytes"


def test_rename_files_and_directories(fs: tuple[Path, str], boto: Any) -> None:
    mnt, bucket = fs
    (mnt / "ren").mkdir()
    (mnt / "ren" / "old.txt").write_bytes(b"moving")
    (mnt / "ren" / "old.txt").rename(mnt / "ren" / "new.txt")
    assert os.listdir(mnt / "ren") == ["new.txt"]
    assert keys_of(boto, bucket, "ren") == {"ren/": 0, "ren/new.txt": 6}
    (mnt / "ren").rename(mnt / "renamed")
    assert (mnt / "renamed" / "new.txt").read_bytes() == b"moving"
    assert keys_of(boto, bucket, "ren") == {"renamed/": 0, "renamed/new.txt": 6}
    assert body_of(boto, bucket, "renamed/new.txt") == b"moving"
