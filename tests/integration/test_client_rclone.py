"""The real `rclone` (Debian's package) against a real cluster, with a remote defined only by
environment variables (provider Other, path-style), and a read-only `rclone mount`.

What rclone sends: `x-amz-acl: private` on every PutObject, CreateBucket and
CreateMultipartUpload; UNSIGNED-PAYLOAD with Content-MD5 on single PUTs; signed parts with
`Expect: 100-Continue`; the file's modification time as `x-amz-meta-mtime` (and, for
multipart uploads, its MD5 as `x-amz-meta-md5chksum`). When only the modification time
changed, `sync` updates it with a CopyObject onto itself (`x-amz-copy-source` without a
leading slash, `x-amz-metadata-directive: REPLACE`). It HEADs a key before listing it as a
directory, and `purge` first asks GET ?versioning= (logging an ERROR, but going on, if that
fails). AWS_CA_BUNDLE in the environment breaks it ("LoadCustomCABundleError") even for
plain HTTP, so it runs with no AWS_* variable."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from conftest import make_s3, unique_bucket_name
from mounts import fuse_unusable, take_down, wait_mounted

RCLONE = shutil.which("rclone")
if RCLONE is None:
    pytest.skip("rclone is not installed (apt-get install rclone)", allow_module_level=True)

RCLONE_TIMEOUT_S = 120.0
# A file operation stuck in FUSE fails its test (and the fixture still unmounts) well before
# the suite-wide 600 s.
pytestmark = pytest.mark.timeout(180)
MOUNT_TIMEOUT_S = 20.0
MIB = 1024 * 1024
REMOTE = "es"


class Rclone:
    def __init__(self, home: Path, endpoint: str, access_key: str, secret_key: str) -> None:
        home.mkdir(parents=True, exist_ok=True)
        (home / "rclone.conf").write_text("")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_"))}
        prefix = f"RCLONE_CONFIG_{REMOTE.upper()}_"
        env.update({
            "HOME": str(home),
            "RCLONE_CONFIG": str(home / "rclone.conf"),
            "RCLONE_CACHE_DIR": str(home / "cache"),
            prefix + "TYPE": "s3",
            prefix + "PROVIDER": "Other",
            prefix + "ENDPOINT": endpoint,
            prefix + "ACCESS_KEY_ID": access_key,
            prefix + "SECRET_ACCESS_KEY": secret_key,
            prefix + "REGION": "us-east-1",
            prefix + "FORCE_PATH_STYLE": "true",
        })
        self.env = env
        # Bounded everywhere: connect and idle timeouts, few retries.
        self.common = ["--contimeout", "10s", "--timeout", "60s", "--retries", "1", "--low-level-retries", "2"]

    def argv(self, *args: str) -> list[str]:
        assert RCLONE is not None
        return [RCLONE, *args, *self.common]

    def run(self, *args: str, check: bool = True,
            timeout: float = RCLONE_TIMEOUT_S) -> subprocess.CompletedProcess[bytes]:
        result = subprocess.run(self.argv(*args), capture_output=True, env=self.env, timeout=timeout,
                                stdin=subprocess.DEVNULL)
        if check:
            assert result.returncode == 0, (
                f"rclone {' '.join(args)} exited {result.returncode}\nstdout: {result.stdout.decode(errors='replace')}"
                f"\nstderr: {result.stderr.decode(errors='replace')}")
        return result

    def out(self, *args: str, **kwargs: Any) -> str:
        return self.run(*args, **kwargs).stdout.decode()

    def lsjson(self, path: str) -> dict[str, Any]:
        return {e["Path"]: e for e in json.loads(self.out("lsjson", "-R", path))}


@pytest.fixture(scope="module")
def rclone(cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Rclone:
    return Rclone(tmp_path_factory.mktemp("rclone-home"), cluster.endpoint, *cluster.credentials)


@pytest.fixture(scope="module")
def boto(cluster: Any) -> Any:
    return make_s3(cluster.endpoint, *cluster.credentials)


@pytest.fixture
def bucket_name(request: pytest.FixtureRequest) -> str:
    return unique_bucket_name("rclone-", request)


@pytest.fixture
def rc_bucket(rclone: Rclone, bucket_name: str) -> str:
    rclone.run("mkdir", f"{REMOTE}:{bucket_name}")
    return bucket_name


def write_tree(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)


def tree_of(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def keys_of(boto: Any, bucket: str, prefix: str = "") -> dict[str, int]:
    pages = boto.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {c["Key"]: c["Size"] for page in pages for c in page.get("Contents", [])}


def ls_sizes(listing: str) -> dict[str, int]:
    """`rclone ls`: `SIZE PATH` lines, the size right-aligned."""
    return {line.strip().split(" ", 1)[1]: int(line.split()[0]) for line in listing.splitlines() if line.strip()}


FILES = {
    "top.txt": b"top\n",
    "empty": b"",
    "a/b/c/deep.bin": os.urandom(30_000),
    "a/x y.txt": b"spaces in the name\n",
    "ünï dir/fïlé 日本 (1)+&=.txt": "unicode ✓\n".encode(),
    "big/blob.bin": os.urandom(2 * MIB + 3),
}


# -- copy, check, list, cat ---------------------------------------------------------------


def test_copy_check_ls_lsjson_and_cat(rclone: Rclone, rc_bucket: str, boto: Any, tmp_path: Path) -> None:
    write_tree(tmp_path / "src", FILES)
    remote = f"{REMOTE}:{rc_bucket}/photos"
    rclone.run("copy", str(tmp_path / "src"), remote)
    assert keys_of(boto, rc_bucket) == {f"photos/{k}": len(v) for k, v in FILES.items()}

    check = rclone.run("check", str(tmp_path / "src"), remote)
    assert b"0 differences found" in check.stderr
    assert f"{len(FILES)} matching files".encode() in check.stderr

    assert ls_sizes(rclone.out("ls", remote)) == {k: len(v) for k, v in FILES.items()}
    assert rclone.out("lsf", remote).splitlines() == sorted(["a/", "big/", "empty", "top.txt", "ünï dir/"])
    listed = rclone.lsjson(remote)
    for rel, data in FILES.items():
        assert listed[rel]["Size"] == len(data) and listed[rel]["IsDir"] is False, rel
    assert listed["a/b"]["IsDir"] is True
    # rclone keeps the local file's modification time in x-amz-meta-mtime and lists it back.
    src_mtime = (tmp_path / "src" / "top.txt").stat().st_mtime
    assert boto.head_object(Bucket=rc_bucket, Key="photos/top.txt")["Metadata"]["mtime"].startswith(
        str(int(src_mtime)))

    assert rclone.run("cat", f"{remote}/ünï dir/fïlé 日本 (1)+&=.txt").stdout == FILES["ünï dir/fïlé 日本 (1)+&=.txt"]
    blob = FILES["big/blob.bin"]
    assert rclone.run("cat", "--offset", str(MIB - 5), "--count", "10", f"{remote}/big/blob.bin").stdout == \
        blob[MIB - 5:MIB + 5]
    assert rclone.run("cat", f"{remote}/big/blob.bin").stdout == blob

    lines = rclone.out("md5sum", remote).splitlines()
    md5s = {path: digest for digest, path in (line.split("  ", 1) for line in lines)}
    assert md5s == {k: hashlib.md5(v).hexdigest() for k, v in FILES.items()}
    assert rc_bucket in rclone.out("lsd", f"{REMOTE}:").split()


def test_sync_up_and_down(rclone: Rclone, rc_bucket: str, boto: Any, tmp_path: Path) -> None:
    files = dict(FILES)
    src, back = tmp_path / "src", tmp_path / "back"
    write_tree(src, files)
    remote = f"{REMOTE}:{rc_bucket}/mirror"
    rclone.run("sync", str(src), remote)
    # Add, change (new size) and remove files, then sync again.
    files["new/file.txt"] = b"new\n"
    files["top.txt"] = b"top, longer now\n"
    del files["a/x y.txt"]
    (src / "a" / "x y.txt").unlink()
    write_tree(src, {"new/file.txt": files["new/file.txt"], "top.txt": files["top.txt"]})
    rclone.run("sync", str(src), remote)
    assert keys_of(boto, rc_bucket) == {f"mirror/{k}": len(v) for k, v in files.items()}
    assert b"0 differences found" in rclone.run("check", str(src), remote).stderr

    rclone.run("sync", remote, str(back))
    assert tree_of(back) == files
    assert b"0 differences found" in rclone.run("check", str(back), remote).stderr


def test_sync_of_a_touched_file_updates_its_modification_time(rclone: Rclone, rc_bucket: str, boto: Any,
                                                               tmp_path: Path) -> None:
    """Same bytes, new mtime: rclone updates the metadata in place with a CopyObject."""
    src = tmp_path / "src"
    write_tree(src, {"photo.jpg": b"jpeg bytes", "other": b"o"})
    remote = f"{REMOTE}:{rc_bucket}/t"
    rclone.run("sync", str(src), remote)
    stamp = 1577880000  # 2020-01-01T12:00:00Z
    os.utime(src / "photo.jpg", (stamp, stamp))
    rclone.run("sync", str(src), remote)
    assert rclone.lsjson(remote)["photo.jpg"]["ModTime"].startswith("2020-01-01T12:00:00")
    assert boto.head_object(Bucket=rc_bucket, Key="t/photo.jpg")["Metadata"]["mtime"].startswith(str(stamp))
    assert boto.get_object(Bucket=rc_bucket, Key="t/photo.jpg")["Body"].read() == b"jpeg bytes"


def test_server_side_copyto_and_moveto(rclone: Rclone, rc_bucket: str, boto: Any) -> None:
    body = os.urandom(3 * MIB)
    boto.put_object(Bucket=rc_bucket, Key="orig.bin", Body=body)
    rclone.run("copyto", f"{REMOTE}:{rc_bucket}/orig.bin", f"{REMOTE}:{rc_bucket}/copies/one.bin")
    rclone.run("moveto", f"{REMOTE}:{rc_bucket}/copies/one.bin", f"{REMOTE}:{rc_bucket}/moved/two.bin")
    assert keys_of(boto, rc_bucket) == {"orig.bin": len(body), "moved/two.bin": len(body)}
    assert boto.get_object(Bucket=rc_bucket, Key="moved/two.bin")["Body"].read() == body


def test_delete_deletefile_and_purge(rclone: Rclone, rc_bucket: str, boto: Any) -> None:
    for key in ["keep.txt", "logs/1.log", "logs/2.log", "logs/old/3.log", "x.tmp", "y.tmp"]:
        boto.put_object(Bucket=rc_bucket, Key=key, Body=key.encode())
    rclone.run("deletefile", f"{REMOTE}:{rc_bucket}/keep.txt")
    rclone.run("delete", "--include", "*.tmp", f"{REMOTE}:{rc_bucket}")
    assert sorted(keys_of(boto, rc_bucket)) == ["logs/1.log", "logs/2.log", "logs/old/3.log"]
    rclone.run("delete", f"{REMOTE}:{rc_bucket}/logs")
    assert keys_of(boto, rc_bucket) == {}
    boto.put_object(Bucket=rc_bucket, Key="last/one", Body=b"1")
    # purge: every object, then the bucket itself.
    rclone.run("purge", f"{REMOTE}:{rc_bucket}")
    assert rc_bucket not in {b["Name"] for b in boto.list_buckets()["Buckets"]}


def test_copy_of_a_40_mib_file_as_multipart(rclone: Rclone, rc_bucket: str, boto: Any, tmp_path: Path) -> None:
    body = os.urandom(40 * MIB + 5)
    (tmp_path / "up").mkdir()
    (tmp_path / "up" / "forty.bin").write_bytes(body)
    remote = f"{REMOTE}:{rc_bucket}/big"
    # rclone's default cutoff is 200 MiB; 5 MiB chunks make 9 parts.
    rclone.run("copy", "--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M", str(tmp_path / "up"), remote)
    head = boto.head_object(Bucket=rc_bucket, Key="big/forty.bin")
    chunk = 5 * MIB
    parts = [body[i:i + chunk] for i in range(0, len(body), chunk)]
    expected = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest() + f"-{len(parts)}"
    assert (head["ContentLength"], head["ETag"]) == (len(body), f'"{expected}"')
    # A multipart ETag is no MD5: rclone keeps the whole file's MD5 in metadata and checks with it.
    assert b"0 differences found" in rclone.run("check", str(tmp_path / "up"), remote).stderr
    assert rclone.out("md5sum", remote).split() == [hashlib.md5(body).hexdigest(), "forty.bin"]
    rclone.run("copy", remote, str(tmp_path / "down"))
    assert hashlib.sha256((tmp_path / "down" / "forty.bin").read_bytes()).digest() == hashlib.sha256(body).digest()


# -- rclone mount -------------------------------------------------------------------------



@pytest.fixture
def ro_mount(rclone: Rclone, rc_bucket: str, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    reason = fuse_unusable()
    if reason:
        pytest.skip(f"rclone mount needs FUSE: {reason}")
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    log = open(tmp_path / "mount.log", "wb")
    proc = subprocess.Popen(rclone.argv("mount", "--read-only", "--vfs-cache-mode", "off", "--dir-cache-time", "1s",
                                        f"{REMOTE}:{rc_bucket}", str(mountpoint)),
                            env=rclone.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_mounted(mountpoint, proc, tmp_path / "mount.log", "rclone mount", MOUNT_TIMEOUT_S)
        yield mountpoint, rc_bucket
    finally:
        log.close()
        take_down(mountpoint, proc)


def test_read_only_mount_lists_and_reads(ro_mount: tuple[Path, str], boto: Any) -> None:
    mnt, bucket = ro_mount
    files = {"readme.txt": b"hello through fuse\n", "photos/2024/a.jpg": os.urandom(3 * MIB + 17),
             "photos/b.jpg": b"b" * 1000}
    for key, data in files.items():
        boto.put_object(Bucket=bucket, Key=key, Body=data)
    # The mount came up before the objects did: wait out the 1 s directory cache.
    deadline = time.monotonic() + 10
    while sorted(os.listdir(mnt)) != ["photos", "readme.txt"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert sorted(os.listdir(mnt)) == ["photos", "readme.txt"]
    assert sorted(os.listdir(mnt / "photos")) == ["2024", "b.jpg"]
    assert (mnt / "photos").is_dir()
    for key, data in files.items():
        assert (mnt / key).stat().st_size == len(data), key
        assert (mnt / key).read_bytes() == data, key
    with open(mnt / "photos" / "2024" / "a.jpg", "rb") as f:
        f.seek(2 * MIB)
        assert f.read(100) == files["photos/2024/a.jpg"][2 * MIB:2 * MIB + 100]
    with pytest.raises(OSError):
        (mnt / "new.txt").write_bytes(b"read-only")
    assert "new.txt" not in keys_of(boto, bucket)
