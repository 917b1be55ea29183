"""`edgestore mount` as a whole: the daemon and `edgestore umount`, a file larger than the
cache streamed both ways in bounded memory, two mounts of one bucket (close-to-open), a
bucket shared with s3fs-fuse, and a mount process killed with SIGKILL."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import make_s3, unique_bucket_name
from edgestore.fuse.files import Tuning
from edgestore.fuse.fs import EdgeFS
from edgestore.fuse.libfuse import LIBFUSE_ENV
from edgestore.fuse.s3client import ListPage, S3Client
from fusemount import LIBFUSES, edgestore_mount, libfuse_missing, loaded_libfuse, mount_command, rss_peak_kib
from mounts import fuse_unusable, mounted, take_down, unmount, wait_mounted

MIB = 1024 * 1024
pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module", autouse=True)
def needs_fuse() -> None:
    reason = fuse_unusable()
    if reason:
        pytest.skip(f"the mount needs FUSE: {reason}")


@pytest.fixture(scope="module")
def boto(cluster: Any) -> Any:
    return make_s3(cluster.endpoint, *cluster.credentials)


@pytest.fixture
def bucket(boto: Any, request: pytest.FixtureRequest) -> str:
    name = unique_bucket_name("m", request)
    boto.create_bucket(Bucket=name)
    return name


def edgestore(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgestore", *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def write_pattern(path: Path, size: int, seed: bytes) -> str:
    """Write ``size`` bytes derived from ``seed`` in 1 MiB writes; returns their SHA-256."""
    digest = hashlib.sha256()
    block = hashlib.sha256(seed).digest() * (MIB // 32)
    with open(path, "wb") as f:
        for i in range(0, size, MIB):
            piece = (i.to_bytes(8, "big") + block)[:min(MIB, size - i)]
            f.write(piece)
            digest.update(piece)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(MIB):
            digest.update(chunk)
    return digest.hexdigest()


def test_mount_runs_as_a_daemon_and_umount_takes_it_down(cluster: Any, bucket: str, tmp_path: Path) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    started = edgestore(*mount_command(cluster, bucket, mnt, tmp_path)[3:])
    try:
        assert started.returncode == 0, started.stderr
        assert mounted(mnt)  # ready when the command returns
        fstype = next(line.split()[2] for line in open("/proc/mounts") if line.split()[1] == str(mnt))
        assert fstype == "fuse.edgestore"
        (mnt / "hello").write_bytes(b"from the daemon")
        again = edgestore(*mount_command(cluster, bucket, mnt, tmp_path)[3:])
        assert again.returncode != 0 and "already mounted" in again.stderr
    finally:
        stopped = edgestore("umount", str(mnt))
        if mounted(mnt):
            unmount(mnt)
    assert stopped.returncode == 0, stopped.stderr
    assert not mounted(mnt)
    assert edgestore("umount", str(mnt)).returncode != 0  # not mounted any more: said so
    deadline = time.monotonic() + 30  # the daemon ends on its own after the unmount
    while any("mount" in p and str(mnt) in p for p in _commands()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any("mount" in p and str(mnt) in p for p in _commands())
    assert make_s3(cluster.endpoint, *cluster.credentials).get_object(
        Bucket=bucket, Key="hello")["Body"].read() == b"from the daemon"


def _commands() -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            found.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue
    return found


def test_mount_refuses_a_missing_bucket_and_bad_keys(cluster: Any, tmp_path: Path) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    missing = edgestore(*mount_command(cluster, "no-such-bucket-here", mnt, tmp_path)[3:])
    assert missing.returncode == 2 and "NoSuchBucket" in missing.stderr
    bad = edgestore("mount", "x", str(mnt), "--endpoint", cluster.endpoint, "--access-key", "AKIDNOPE",
                    "--secret-key", "nope")
    assert bad.returncode == 2 and not mounted(mnt)


def test_libfuse_3_is_the_default_and_libfuse_2_is_there_when_asked_for(cluster: Any, bucket: str, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    for major in LIBFUSES:
        if libfuse_missing(major):
            pytest.skip(str(libfuse_missing(major)))
    # The default as an operator gets it, even when the suite runs with EDGESTORE_LIBFUSE=2.
    monkeypatch.delenv(LIBFUSE_ENV, raising=False)
    with edgestore_mount(cluster, bucket, tmp_path / "default") as (mnt, proc):
        assert loaded_libfuse(proc.pid) == 3
        (mnt / "from-3").write_bytes(b"written with libfuse 3")
    with edgestore_mount(cluster, bucket, tmp_path / "two", "-o", "libfuse=2,nonempty") as (mnt, proc):
        assert loaded_libfuse(proc.pid) == 2
        assert (mnt / "from-3").read_bytes() == b"written with libfuse 3"
    # An fstab line written for libfuse 2 (nonempty) mounts with libfuse 3 too.
    with edgestore_mount(cluster, bucket, tmp_path / "three", "-o", "nonempty,big_writes") as (mnt, proc):
        assert loaded_libfuse(proc.pid) == 3 and (mnt / "from-3").exists()


@pytest.mark.parametrize("libfuse", LIBFUSES)
def test_reads_and_writes_reach_the_mount_in_requests_as_large_as_libfuse_allows(cluster: Any, bucket: str,
                                                                                tmp_path: Path, libfuse: str) -> None:
    """libfuse 3: 1 MiB per write callback, and per read callback of a sequential reader with
    the kernel's read-ahead raised from 128 KiB (kernel_readahead=1M, as root); libfuse 2
    (with big_writes): 128 KiB both."""
    if libfuse_missing(libfuse):
        pytest.skip(str(libfuse_missing(libfuse)))
    with edgestore_mount(cluster, bucket, tmp_path, "--libfuse", libfuse, "--debug",
                         "-o", "kernel_readahead=1M") as (mnt, _):
        with open(mnt / "four-mib", "wb") as f:
            # (Bytes whose pages were written: the kernel sends a page the writer never touched
            # in a write of its own, whatever the libfuse.)
            f.write(b"\x01" * (4 * MIB))
        with open(mnt / "four-mib", "rb") as f:  # (an open drops the file's pages from the kernel's cache)
            while f.read(MIB):
                pass
    # libfuse's own debug output (-d): a line per request it hands the mount.
    debug = (tmp_path / "stderr").read_text()
    writes = [int(n) for n in re.findall(r"^write(?:page)?\[\d+\] (\d+) bytes to", debug, re.MULTILINE)]
    reads = [int(n) for n in re.findall(r"^read\[\d+\] (\d+) bytes from", debug, re.MULTILINE)]
    assert sum(writes) == 4 * MIB and max(writes) == (MIB if libfuse == "3" else 128 * 1024)
    assert sum(reads) >= 4 * MIB
    assert max(reads) == (MIB if libfuse == "3" and os.geteuid() == 0 else 128 * 1024)


def test_a_file_larger_than_the_cache_streams_both_ways_in_bounded_memory(cluster: Any, bucket: str, boto: Any,
                                                                          tmp_path: Path) -> None:
    size = 96 * MIB  # six times the cache
    with edgestore_mount(cluster, bucket, tmp_path, "--cache-size", "16M") as (mnt, proc):
        written = write_pattern(mnt / "big.bin", size, b"big")
        assert (mnt / "big.bin").stat().st_size == size
        assert sha256_of(mnt / "big.bin") == written
        peak_mib = rss_peak_kib(proc.pid) / 1024
    head = boto.head_object(Bucket=bucket, Key="big.bin")
    assert head["ContentLength"] == size
    assert "-" in head["ETag"]  # a multipart upload
    digest = hashlib.sha256()
    for chunk in boto.get_object(Bucket=bucket, Key="big.bin")["Body"].iter_chunks(MIB):
        digest.update(chunk)
    assert digest.hexdigest() == written
    assert peak_mib < 120, f"the mount process peaked at {peak_mib:.0f} MiB"


def test_a_file_larger_than_the_cache_keeps_the_metadata_set_before_its_close(cluster: Any, bucket: str, boto: Any,
                                                                             tmp_path: Path) -> None:
    """Its upload starts while it is written (the cache is full): a chmod, chown and
    utimensat of the open file after that are still what the object carries once closed."""
    atime_ns, mtime_ns = 1_600_000_000_123_456_789, 1_700_000_000_987_654_321
    with edgestore_mount(cluster, bucket, tmp_path, "--cache-size", "16M") as (mnt, _):
        fd = os.open(mnt / "big.bin", os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            block = hashlib.sha256(b"meta").digest() * (MIB // 32)
            for _ in range(48):  # three times the cache
                os.write(fd, block)
            os.fchmod(fd, 0o600)
            os.fchown(fd, 1234, 5678)
            os.utime(fd, ns=(atime_ns, mtime_ns))
        finally:
            os.close(fd)
        st = os.stat(mnt / "big.bin")
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_mtime_ns) == (0o600, 1234, mtime_ns)
    head = boto.head_object(Bucket=bucket, Key="big.bin")
    assert head["ContentLength"] == 48 * MIB
    meta = head["Metadata"]
    assert meta["mode"] == str(stat.S_IFREG | 0o600)
    assert (meta["uid"], meta["gid"]) == ("1234", "5678")
    assert (meta["mtime"], meta["atime"]) == ("1700000000.987654321", "1600000000.123456789")


def test_two_mounts_see_each_others_closed_files(cluster: Any, bucket: str, tmp_path: Path) -> None:
    """Close-to-open: what one mount closed, the other's next open sees, even with both
    having looked at the file before."""
    with edgestore_mount(cluster, bucket, tmp_path / "a", "--ttl", "30") as (a, _), \
            edgestore_mount(cluster, bucket, tmp_path / "b", "--ttl", "30") as (b, _):
        (a / "shared.txt").write_bytes(b"version one")
        assert (b / "shared.txt").read_bytes() == b"version one"
        (a / "shared.txt").write_bytes(b"version two, longer than the first")
        assert (b / "shared.txt").read_bytes() == b"version two, longer than the first"
        with open(b / "shared.txt", "r+b") as f:
            f.write(b"VERSION")
        assert (a / "shared.txt").read_bytes() == b"VERSION two, longer than the first"
        (b / "dir").mkdir()
        (b / "dir" / "new").write_bytes(b"made in b")
        assert (a / "dir" / "new").read_bytes() == b"made in b"


@pytest.mark.skipif(shutil.which("s3fs") is None, reason="s3fs-fuse is not installed (apt-get install s3fs)")
def test_s3fs_and_edgestore_mount_read_each_others_metadata(cluster: Any, bucket: str, tmp_path: Path) -> None:
    home = tmp_path / "s3fs"
    home.mkdir()
    access, secret = cluster.credentials
    (home / "passwd").write_text(f"{access}:{secret}\n")
    (home / "passwd").chmod(0o600)
    theirs = home / "mnt"
    theirs.mkdir()
    options = f"passwd_file={home / 'passwd'},url={cluster.endpoint},use_path_request_style,endpoint=us-east-1," \
              "stat_cache_expire=1,dbglevel=warn"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS")}
    with open(home / "s3fs.log", "wb") as log:
        proc = subprocess.Popen(["s3fs", bucket, str(theirs), "-f", "-o", options], env=env, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_mounted(theirs, proc, home / "s3fs.log", "s3fs")
        with edgestore_mount(cluster, bucket, tmp_path / "ours", "--ttl", "0.5") as (ours, _):
            stamp = 1_577_836_800  # 2020-01-01
            (theirs / "by-s3fs").mkdir()
            (theirs / "by-s3fs" / "file.txt").write_bytes(b"written by s3fs")
            os.chmod(theirs / "by-s3fs" / "file.txt", 0o640)
            os.utime(theirs / "by-s3fs" / "file.txt", (stamp, stamp))
            os.symlink("file.txt", theirs / "by-s3fs" / "link")
            time.sleep(1)
            st = os.stat(ours / "by-s3fs" / "file.txt")
            assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o640
            assert int(st.st_mtime) == stamp
            assert (ours / "by-s3fs" / "file.txt").read_bytes() == b"written by s3fs"
            assert (ours / "by-s3fs").is_dir()
            assert os.readlink(ours / "by-s3fs" / "link") == "file.txt"

            (ours / "by-us").mkdir(mode=0o750)
            (ours / "by-us" / "file.txt").write_bytes(b"written by edgestore mount")
            os.chmod(ours / "by-us" / "file.txt", 0o604)
            os.utime(ours / "by-us" / "file.txt", ns=(stamp * 10**9, stamp * 10**9 + 250_000_000))
            os.symlink("file.txt", ours / "by-us" / "link")
            time.sleep(2)  # s3fs' stat cache
            st = os.stat(theirs / "by-us" / "file.txt")
            assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o604
            assert st.st_mtime_ns == stamp * 10**9 + 250_000_000
            assert (theirs / "by-us" / "file.txt").read_bytes() == b"written by edgestore mount"
            assert stat.S_IMODE(os.stat(theirs / "by-us").st_mode) == 0o750
            assert os.readlink(theirs / "by-us" / "link") == "file.txt"
    finally:
        take_down(theirs, proc)


def test_a_killed_mount_leaves_nothing_stuck_and_no_partial_object(cluster: Any, bucket: str, boto: Any,
                                                                   tmp_path: Path) -> None:
    home = tmp_path / "killed"
    with edgestore_mount(cluster, bucket, home, "--cache-size", "16M") as (mnt, proc):
        (mnt / "done.txt").write_bytes(b"closed before the kill")
        f = open(mnt / "partial.bin", "wb")
        for _ in range(40):  # past the cache: parts of a multipart upload are already sent
            f.write(os.urandom(MIB))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        with pytest.raises(OSError) as info:
            os.stat(mnt / "done.txt")
        assert info.value.errno == errno.ENOTCONN  # the mount is dead, not hanging
        umounted = edgestore("umount", str(mnt))
        assert umounted.returncode == 0, umounted.stderr
        assert not mounted(mnt)
        try:
            f.close()
        except OSError:
            pass
    keys = {c["Key"] for c in boto.list_objects_v2(Bucket=bucket).get("Contents", [])}
    assert keys == {"done.txt"}
    # The mount point is usable again.
    with edgestore_mount(cluster, bucket, home) as (mnt, _):
        assert sorted(os.listdir(mnt)) == ["done.txt"]


def test_mounting_again_over_a_killed_mount_replaces_it(cluster: Any, bucket: str, tmp_path: Path) -> None:
    """As systemd's Restart= does after a crash: no `umount` needed first."""
    with edgestore_mount(cluster, bucket, tmp_path / "first") as (mnt, proc):
        (mnt / "kept").write_bytes(b"kept")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert mounted(mnt)  # dead, but still there
        again = edgestore(*mount_command(cluster, bucket, mnt, tmp_path / "first")[3:])
        try:
            assert again.returncode == 0, again.stderr
            assert (mnt / "kept").read_bytes() == b"kept"
        finally:
            assert edgestore("umount", str(mnt)).returncode == 0


def test_the_fstab_helper_takes_the_options_mount8_passes(cluster: Any, bucket: str, tmp_path: Path) -> None:
    helper = Path(sys.executable).parent / "mount.edgestore"
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    options = ",".join(["rw", "_netdev", "nofail", "x-systemd.automount", "noatime",
                        f"cluster={cluster.data / 'cluster.json'}", f"cache_dir={tmp_path / 'cache'}",
                        "cache_size=64M", "ttl=2", f"log_file={tmp_path / 'mount.log'}"])
    done = subprocess.run([str(helper), bucket, str(mnt), "-o", options], capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)
    try:
        assert done.returncode == 0, done.stderr
        line = next(line.split() for line in open("/proc/mounts") if line.split()[1] == str(mnt))
        assert line[0] == f"edgestore:{bucket}" and line[2] == "fuse.edgestore" and "noatime" in line[3]
        (mnt / "via-fstab").write_bytes(b"ok")
        assert (mnt / "via-fstab").read_bytes() == b"ok"
    finally:
        if mounted(mnt):
            assert edgestore("umount", str(mnt)).returncode == 0


def requests_sent(mnt: Path) -> dict[str, int]:
    """What the mount has sent so far, by kind (its root's read-only xattr)."""
    return dict(json.loads(os.getxattr(mnt, "user.edgestore.requests")))


def test_lookups_of_siblings_are_answered_from_one_listing(cluster: Any, bucket: str, boto: Any,
                                                           tmp_path: Path) -> None:
    """A walk looks up every name of a directory: one listing answers them all, with their
    attributes; a name another client adds after that listing is still found (close-to-open)."""
    boto.put_object(Bucket=bucket, Key="sib/", Body=b"", ContentType="application/x-directory",
                    Metadata={"mode": str(stat.S_IFDIR | 0o750)})
    for i in range(20):
        boto.put_object(Bucket=bucket, Key=f"sib/f{i:02d}", Body=b"x" * i, Metadata={"mode": str(stat.S_IFREG | 0o600)})
    with edgestore_mount(cluster, bucket, tmp_path, "--ttl", "30") as (mnt, _):
        before = requests_sent(mnt)
        assert stat.S_IMODE(os.stat(mnt / "sib").st_mode) == 0o750
        for i in range(20):
            st = os.stat(mnt / "sib" / f"f{i:02d}")
            assert st.st_size == i and stat.S_IMODE(st.st_mode) == 0o600
        assert sorted(os.listdir(mnt / "sib")) == [f"f{i:02d}" for i in range(20)]
        sent = {k: n - before.get(k, 0) for k, n in requests_sent(mnt).items() if n > before.get(k, 0)}
        assert sent == {"LIST": 2}  # the root's (to look up `sib`) and `sib`'s, which had its own attributes
        with pytest.raises(FileNotFoundError):
            os.stat(mnt / "sib" / "absent")
        boto.put_object(Bucket=bucket, Key="sib/later", Body=b"made elsewhere")
        assert (mnt / "sib" / "later").read_bytes() == b"made elsewhere"


class WriteDuringGet(S3Client):
    """The real client, which runs ``during`` once, when the first piece of a streamed GET has
    arrived and before it is handed over: a local write racing a fetch, in a set order."""

    during: Callable[[], None] | None = None

    def get_into(self, key: str, start: int, length: int, write: Callable[[int, memoryview], None]) -> int:
        def first_after(pos: int, piece: memoryview) -> None:
            if self.during is not None:
                during, self.during = self.during, None
                during()
            write(pos, piece)

        return super().get_into(key, start, length, first_after)


def test_bytes_fetched_around_a_local_change_never_cover_it(cluster: Any, bucket: str, boto: Any,
                                                            tmp_path: Path) -> None:
    """A write into the range a fill is bringing stays what the file reads and uploads (the
    file system driven directly: no page cache in the way); and a few random reads of a large
    file fetch little of it."""
    data = bytearray(os.urandom(20 * MIB))
    boto.put_object(Bucket=bucket, Key="obj", Body=bytes(data))
    client = WriteDuringGet(cluster.endpoint, bucket, *cluster.credentials)
    fs = EdgeFS(client, Tuning(cache_dir=str(tmp_path)), ttl_s=0)
    try:
        fh = fs.open("/obj", os.O_RDWR)
        for offset in (3 * MIB + 5, 17 * MIB, 9 * MIB + 4096):  # the first misses of a file bring little
            assert fs.read("/obj", 4096, offset, fh) == data[offset:offset + 4096]
        assert fs._handles[fh].file.present.total() <= (128 + 256 + 512 + 1024) * 1024  # the open's GET, then regions
        client.during = lambda: fs.write("/obj", b"local", 12 * MIB + 7, fh)
        data[12 * MIB + 7:12 * MIB + 12] = b"local"
        assert fs.read("/obj", 4 * MIB, 10 * MIB, fh) == data[10 * MIB:14 * MIB]
        assert client.during is None  # (the write came while the 4 MiB were on their way)
        fs.release("/obj", fh)
    finally:
        fs.destroy("/")
    assert boto.get_object(Bucket=bucket, Key="obj")["Body"].read() == data


def test_with_ttl_0_a_lookup_lists_only_the_name_not_its_directory(cluster: Any, bucket: str, boto: Any) -> None:
    """A listing of the parent answers sibling lookups from the cache; with a TTL of 0 nothing
    is cached, so a lookup sends its one listing of the name and nothing more."""
    boto.put_object(Bucket=bucket, Key="sib/", Body=b"", ContentType="application/x-directory",
                    Metadata={"mode": str(stat.S_IFDIR | 0o750)})
    for i in range(20):
        boto.put_object(Bucket=bucket, Key=f"sib/f{i:02d}", Body=b"x" * i, Metadata={"mode": str(stat.S_IFREG | 0o600)})
    fs = EdgeFS(S3Client(cluster.endpoint, bucket, *cluster.credentials), Tuning(), ttl_s=0)
    try:
        for path, mode in (("/sib/f03", stat.S_IFREG | 0o600), ("/sib", stat.S_IFDIR | 0o750)):
            before = dict(fs.client.sent)
            assert fs.getattr(path)["st_mode"] == mode
            assert {k: n - before.get(k, 0) for k, n in fs.client.sent.items() if n > before.get(k, 0)} == {"LIST": 1}
        with pytest.raises(OSError):
            fs.getattr("/sib/absent")
    finally:
        fs.destroy("/")


class ChangeDuringListing(S3Client):
    """The real client, which runs ``during`` once, when a listing of ``prefix`` has come back
    and before the mount has used it: a local change racing a lookup's listing, in a set order."""

    prefix = ""
    during: Callable[[], None] | None = None

    def list_page(self, prefix: str, *args: Any, **kwargs: Any) -> ListPage:
        page = super().list_page(prefix, *args, **kwargs)
        if prefix == self.prefix and self.during is not None:
            during, self.during = self.during, None
            during()
        return page


def test_a_listing_sent_before_a_local_change_does_not_undo_it(cluster: Any, bucket: str, boto: Any) -> None:
    """A lookup lists the directory; before that answer is cached, this mount renames a file
    in it. The older listing must not be cached: the old name stays gone, the new one shown
    (for the whole TTL, 30 s here)."""
    boto.put_object(Bucket=bucket, Key="race/", Body=b"", ContentType="application/x-directory")
    for name in ("old", "kept"):
        boto.put_object(Bucket=bucket, Key=f"race/{name}", Body=name.encode())
    client = ChangeDuringListing(cluster.endpoint, bucket, *cluster.credentials)
    fs = EdgeFS(client, Tuning(), ttl_s=30)
    try:
        client.prefix = "race/"
        client.during = lambda: fs.rename("/race/old", "/race/new")
        assert fs.getattr("/race/kept")["st_size"] == 4  # its listing, overtaken by the rename
        with pytest.raises(OSError) as info:
            fs.getattr("/race/old")
        assert info.value.errno == errno.ENOENT
        assert fs.getattr("/race/new")["st_size"] == 3
        assert fs.readdir("/race", 0) == [".", "..", "kept", "new"]
        assert sorted(o["Key"] for o in boto.list_objects_v2(Bucket=bucket, Prefix="race/")["Contents"]) == \
            ["race/", "race/kept", "race/new"]
    finally:
        fs.destroy("/")


def test_a_directorys_mkdir_chmod_chown_and_utimensat_are_one_request(cluster: Any, bucket: str, boto: Any,
                                                                      tmp_path: Path) -> None:
    """As tar makes each directory it extracts and sets them on it: shown at once, stored
    together (at the latest on fsync of the directory); a directory removed before it was
    stored is never written."""
    stamp = 1_600_000_000_123_456_789
    with edgestore_mount(cluster, bucket, tmp_path, "--ttl", "5") as (mnt, _):  # (written 5 s after the mkdir)
        before = requests_sent(mnt)
        (mnt / "d").mkdir(mode=0o700)
        os.utime(mnt / "d", ns=(stamp, stamp))
        os.chown(mnt / "d", 1234, 5678)
        os.chmod(mnt / "d", 0o751)
        st = os.stat(mnt / "d")
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime_ns) == (0o751, 1234, 5678, stamp)
        fd = os.open(mnt / "d", os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        sent = {k: n - before.get(k, 0) for k, n in requests_sent(mnt).items() if n > before.get(k, 0)}
        assert {k: n for k, n in sent.items() if k != "LIST"} == {"PUT": 1}  # (LIST: the lookup before mkdir)
        meta = boto.head_object(Bucket=bucket, Key="d/")["Metadata"]
        assert (meta["mode"], meta["uid"], meta["gid"]) == (str(stat.S_IFDIR | 0o751), "1234", "5678")
        assert meta["mtime"] == "1600000000.123456789"
        (mnt / "gone").mkdir()
        assert (mnt / "gone").is_dir() and "gone" in os.listdir(mnt)
        (mnt / "d" / "sub").mkdir()
        with pytest.raises(OSError) as info:
            (mnt / "d").rmdir()
        assert info.value.errno == errno.ENOTEMPTY
        (mnt / "d" / "sub").rmdir()
        (mnt / "gone").rmdir()
        assert not (mnt / "gone").exists() and "gone" not in os.listdir(mnt)
    keys = {o["Key"] for o in boto.list_objects_v2(Bucket=bucket).get("Contents", [])}  # (all written at unmount)
    assert keys == {"d/"}


def test_dir_ttl_zero_writes_a_directorys_metadata_at_once(cluster: Any, bucket: str, boto: Any,
                                                           tmp_path: Path) -> None:
    with edgestore_mount(cluster, bucket, tmp_path, "-o", "dir_ttl=0") as (mnt, _):
        (mnt / "d").mkdir(mode=0o700)
        os.chmod(mnt / "d", 0o755)
        assert boto.head_object(Bucket=bucket, Key="d/")["Metadata"]["mode"] == str(stat.S_IFDIR | 0o755)
