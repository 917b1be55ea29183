"""rclone's swift backend (Debian's rclone) against a real cluster, logged in both ways a
Swift site offers: TempAuth v1 (/auth/v1.0, user account:user) and Keystone v3 (/v3, user,
domain, tenant). The remote is defined by environment variables only.

What rclone sends: the file's modification time as X-Object-Meta-Mtime; `check` compares
sizes and the ETag (MD5). Above --swift-chunk-size it uploads the file in segments into
"<container>_segments" and writes a DLO manifest (X-Object-Manifest) in its place."""

from __future__ import annotations

import hashlib
import os
from datetime import datetime
from pathlib import Path
from typing import Iterator

import pytest
from clusterlib import LocalCluster
from conftest import unique_bucket_name
from test_client_rclone import FILES, REMOTE, Rclone, ls_sizes, tree_of, write_tree

swiftclient = pytest.importorskip("swiftclient")
from swiftclient.client import ClientException, Connection  # noqa: E402

pytestmark = pytest.mark.timeout(300)
MIB = 1024 * 1024


class SwiftRclone(Rclone):
    """test_client_rclone's runner (own HOME and config, bounded timeouts and retries) with a
    swift remote in place of its S3 one."""

    def __init__(self, home: Path, options: dict[str, str]) -> None:
        super().__init__(home, "", "", "")
        prefix = f"RCLONE_CONFIG_{REMOTE.upper()}_"
        self.env = {k: v for k, v in self.env.items() if not k.startswith(prefix)}
        self.env.update({prefix + key.upper(): value for key, value in {"type": "swift", **options}.items()})


def remote_options(cluster: LocalCluster, login: str) -> dict[str, str]:
    key = cluster.credentials[1]
    if login == "tempauth":
        return {"auth": cluster.endpoint + "/auth/v1.0", "auth_version": "1", "user": "default:admin",
                "key": key}
    return {"auth": cluster.endpoint + "/v3", "auth_version": "3", "user": "admin", "key": key,
            "domain": "Default", "tenant": "default", "tenant_domain": "Default"}


@pytest.fixture(scope="module", params=["tempauth", "keystone"])
def rc(request: pytest.FixtureRequest, cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> SwiftRclone:
    return SwiftRclone(tmp_path_factory.mktemp(f"rclone-swift-{request.param}"),
                       remote_options(cluster, request.param))


@pytest.fixture(scope="module")
def conn(cluster: LocalCluster) -> Connection:
    """An independent view of what rclone stored (TempAuth login)."""
    return Connection(authurl=cluster.endpoint + "/auth/v1.0", user="default:admin",
                      key=cluster.credentials[1], retries=1, timeout=30)


@pytest.fixture
def container(rc: SwiftRclone, request: pytest.FixtureRequest) -> Iterator[str]:
    name = unique_bucket_name("rcs-", request)
    rc.run("mkdir", f"{REMOTE}:{name}")
    yield name


def test_copy_tree_up_list_check_and_back(rc: SwiftRclone, container: str, conn: Connection,
                                          tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_tree(src, FILES)
    rc.run("copy", str(src), f"{REMOTE}:{container}")
    assert ls_sizes(rc.out("ls", f"{REMOTE}:{container}")) == {k: len(v) for k, v in FILES.items()}
    listing = rc.lsjson(f"{REMOTE}:{container}")
    files = {path: entry for path, entry in listing.items() if not entry["IsDir"]}
    assert {path: entry["Size"] for path, entry in files.items()} == {k: len(v) for k, v in FILES.items()}
    # Modification times survive (rclone keeps them as X-Object-Meta-Mtime).
    for rel, entry in files.items():
        assert abs(datetime.fromisoformat(entry["ModTime"]).timestamp() - (src / rel).stat().st_mtime) < 0.01, rel
    # `check` compares sizes and MD5s (the ETags) of every file.
    rc.run("check", str(src), f"{REMOTE}:{container}")
    # What Swift itself sees: the same names and MD5s.
    _, objects = conn.get_container(container, full_listing=True)
    assert {o["name"]: o["hash"] for o in objects} == {k: hashlib.md5(v).hexdigest() for k, v in FILES.items()}
    back = tmp_path / "back"
    rc.run("copy", f"{REMOTE}:{container}", str(back))
    assert tree_of(back) == FILES
    rc.run("deletefile", f"{REMOTE}:{container}/top.txt")
    assert "top.txt" not in ls_sizes(rc.out("ls", f"{REMOTE}:{container}"))
    with pytest.raises(ClientException) as exc:
        conn.head_object(container, "top.txt")
    assert exc.value.http_status == 404
    rc.run("purge", f"{REMOTE}:{container}")
    assert container not in [c["name"] for c in conn.get_account(full_listing=True)[1]]


def test_sync_updates_changed_files_only(rc: SwiftRclone, container: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_tree(src, {"keep.txt": b"same\n", "change.txt": b"old\n", "gone.txt": b"bye\n"})
    rc.run("sync", str(src), f"{REMOTE}:{container}")
    (src / "change.txt").write_bytes(b"new contents\n")
    (src / "gone.txt").unlink()
    output = rc.run("sync", str(src), f"{REMOTE}:{container}", "-v").stderr.decode()
    assert "keep.txt" not in output  # unchanged: not sent again
    assert ls_sizes(rc.out("ls", f"{REMOTE}:{container}")) == {"keep.txt": 5, "change.txt": 13}
    assert rc.out("cat", f"{REMOTE}:{container}/change.txt") == "new contents\n"


def test_large_file_is_segmented_and_reads_back(rc: SwiftRclone, container: str, conn: Connection,
                                                tmp_path: Path) -> None:
    data = os.urandom(3 * MIB + 123_457)
    (tmp_path / "big.bin").write_bytes(data)
    result = rc.run("copyto", str(tmp_path / "big.bin"), f"{REMOTE}:{container}/big.bin",
                    "--swift-chunk-size", "1M", check=False)
    # rclone did cut it in segments, whatever came of the manifest.
    _, segments = conn.get_container(container + "_segments", full_listing=True)
    assert len(segments) >= 4 and sum(s["bytes"] for s in segments) >= len(data)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert ls_sizes(rc.out("ls", f"{REMOTE}:{container}")) == {"big.bin": len(data)}
    assert rc.run("cat", f"{REMOTE}:{container}/big.bin").stdout == data
    assert rc.run("cat", f"{REMOTE}:{container}/big.bin", "--offset", str(MIB - 10),
                  "--count", "20").stdout == data[MIB - 10:MIB + 10]
    rc.run("deletefile", f"{REMOTE}:{container}/big.bin")
    assert conn.get_container(container + "_segments", full_listing=True)[1] == []
