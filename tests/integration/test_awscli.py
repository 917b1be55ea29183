"""The real `aws` command line (awscli v1) against a real cluster: `aws s3` and `aws s3api`,
with its default configuration (files over 8 MiB go up as multipart uploads)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

AWS_TIMEOUT_S = 120.0
VENV_BIN = Path(sys.executable).parent


def _find_aws() -> str | None:
    path = os.pathsep.join([str(VENV_BIN), os.environ.get("PATH", "")])
    return shutil.which("aws", path=path)


AWS = _find_aws()
pytestmark = pytest.mark.skipif(AWS is None, reason="the aws cli (awscli v1) is not installed in the venv")


class AwsCli:
    """Runs `aws --endpoint-url ENDPOINT ...` with the cluster's keys and a private config."""

    def __init__(self, endpoint: str, access_key: str, secret_key: str, home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        config = home / "config"
        # awscli v1 nested syntax: the s3 section's keys are indented under `s3 =`.
        config.write_text("[default]\nregion = us-east-1\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update({
            "AWS_ACCESS_KEY_ID": access_key,
            "AWS_SECRET_ACCESS_KEY": secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": str(config),
            "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "PATH": os.pathsep.join([str(VENV_BIN), os.environ.get("PATH", "")]),
            "PYTHONUTF8": "1",
            "PYTHONIOENCODING": "utf-8",
        })
        self.endpoint = endpoint
        self.env = env

    def run(self, *args: str, input: bytes | None = None, check: bool = True,
            cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
        assert AWS is not None
        argv = [AWS, "--endpoint-url", self.endpoint, *args]
        result = subprocess.run(argv, input=input, capture_output=True, env=self.env, cwd=cwd,
                                timeout=AWS_TIMEOUT_S, stdin=None if input is not None else subprocess.DEVNULL)
        if check:
            assert result.returncode == 0, (
                f"{' '.join(args)} exited {result.returncode}\nstdout: {result.stdout.decode(errors='replace')}"
                f"\nstderr: {result.stderr.decode(errors='replace')}")
        return result

    def out(self, *args: str, **kwargs: Any) -> str:
        return self.run(*args, **kwargs).stdout.decode()

    def json(self, *args: str, **kwargs: Any) -> Any:
        return json.loads(self.out(*args, "--output", "json", **kwargs))


@pytest.fixture(scope="module")
def aws(cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> AwsCli:
    access_key, secret_key = cluster.credentials
    return AwsCli(cluster.endpoint, access_key, secret_key, tmp_path_factory.mktemp("aws-home"))


def unique_bucket(label: str) -> str:
    name = f"cli-{os.getpid()}-{label}".lower()
    return "".join(c if c.isalnum() else "-" for c in name)[:63].strip("-")


@pytest.fixture
def bucket_name(request: pytest.FixtureRequest) -> str:
    return unique_bucket(request.node.name)


@pytest.fixture
def aws_bucket(aws: AwsCli, bucket_name: str) -> str:
    assert aws.out("s3", "mb", f"s3://{bucket_name}").strip() == f"make_bucket: {bucket_name}"
    return bucket_name


@pytest.fixture(scope="module")
def scratch(aws: AwsCli) -> str:
    """One bucket for the tests that only need distinct keys."""
    name = unique_bucket("scratch")
    aws.run("s3", "mb", f"s3://{name}")
    return name


TREE = {"top.txt": b"t", "photos/2024/a.jpg": b"aa", "photos/2024/b.jpg": b"bbb", "photos/2024/sub/c.jpg": b"c" * 4,
        "photos/2025/d.jpg": b"d" * 5, "photos/readme": b"r" * 6, "physics.txt": b"p" * 7, "zz/e": b"e" * 8}


@pytest.fixture(scope="module")
def populated(aws: AwsCli, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A bucket holding TREE, uploaded with one `aws s3 cp --recursive`; tests only read it."""
    local = tmp_path_factory.mktemp("populated")
    for rel, data in TREE.items():
        (local / rel).parent.mkdir(parents=True, exist_ok=True)
        (local / rel).write_bytes(data)
    name = unique_bucket("populated")
    aws.run("s3", "mb", f"s3://{name}")
    out = aws.out("s3", "cp", "--recursive", "--no-progress", ".", f"s3://{name}/", cwd=local)
    assert sorted(line.split(" to ")[1] for line in out.splitlines()) == sorted(f"s3://{name}/{k}" for k in TREE)
    return name


def ls_names(listing: str) -> list[str]:
    """The names in `aws s3 ls` output: `PRE dir/` lines and `date time size key` lines."""
    names = []
    for line in listing.splitlines():
        parts = line.split(maxsplit=3)
        if not parts:
            continue
        if parts[0] == "PRE":
            names.append(line.split("PRE", 1)[1].strip())
        else:
            assert len(parts) == 4, line
            names.append(parts[3])
    return names


def ls_sizes(listing: str) -> dict[str, int]:
    sizes = {}
    for line in listing.splitlines():
        parts = line.split(maxsplit=3)
        if parts and parts[0] != "PRE":
            sizes[parts[3]] = int(parts[2])
    return sizes


def tree_of(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# -- buckets ------------------------------------------------------------------------------


def test_mb_ls_and_rb(aws: AwsCli, bucket_name: str) -> None:
    assert aws.out("s3", "mb", f"s3://{bucket_name}").strip() == f"make_bucket: {bucket_name}"
    assert bucket_name in [line.split()[-1] for line in aws.out("s3", "ls").splitlines()]
    assert aws.out("s3", "ls", f"s3://{bucket_name}") == ""
    assert aws.out("s3", "rb", f"s3://{bucket_name}").strip() == f"remove_bucket: {bucket_name}"
    assert bucket_name not in aws.out("s3", "ls").split()
    # A bucket with objects is refused by plain rb, and removed with its objects by --force.
    aws.run("s3", "mb", f"s3://{bucket_name}")
    aws.run("s3api", "put-object", "--bucket", bucket_name, "--key", "a/b")
    refused = aws.run("s3", "rb", f"s3://{bucket_name}", check=False)
    assert refused.returncode != 0 and b"BucketNotEmpty" in refused.stderr
    out = aws.out("s3", "rb", "--force", f"s3://{bucket_name}")
    assert out.splitlines() == [f"delete: s3://{bucket_name}/a/b", f"remove_bucket: {bucket_name}"]
    assert bucket_name not in aws.out("s3", "ls").split()


def test_ls_of_a_missing_bucket_fails_with_no_such_bucket(aws: AwsCli) -> None:
    result = aws.run("s3", "ls", "s3://no-such-bucket-xyz", check=False)
    assert result.returncode != 0
    assert b"NoSuchBucket" in result.stderr


# -- objects with aws s3 ------------------------------------------------------------------


def test_cp_files_up_and_down(aws: AwsCli, aws_bucket: str, tmp_path: Path) -> None:
    sizes = {"zero.bin": 0, "one-kib.bin": 1024, "twenty-kib.bin": 20 * 1024, "seven-mib.bin": 7 * 1024 * 1024,
             "twenty-mib.bin": 20 * 1024 * 1024 + 5}
    bodies = {name: os.urandom(size) for name, size in sizes.items()}
    for name, body in bodies.items():
        (tmp_path / name).write_bytes(body)
        out = aws.out("s3", "cp", "--no-progress", name, f"s3://{aws_bucket}/files/{name}", cwd=tmp_path)
        assert out.strip() == f"upload: ./{name} to s3://{aws_bucket}/files/{name}"
    listed = aws.json("s3api", "list-objects-v2", "--bucket", aws_bucket, "--prefix", "files/")
    assert {c["Key"]: c["Size"] for c in listed["Contents"]} == {f"files/{n}": s for n, s in sizes.items()}
    # Under the 8 MiB threshold one PutObject (an MD5 ETag); over it, 8 MiB parts.
    etags = {c["Key"]: c["ETag"] for c in listed["Contents"]}
    for name, body in bodies.items():
        if len(body) < 8 * 1024 * 1024:
            assert etags[f"files/{name}"] == f'"{hashlib.md5(body).hexdigest()}"'
        else:
            parts = [body[i:i + 8 * 1024 * 1024] for i in range(0, len(body), 8 * 1024 * 1024)]
            digest = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest()
            assert etags[f"files/{name}"] == f'"{digest}-{len(parts)}"'

    down = tmp_path / "down"
    down.mkdir()
    for name, body in bodies.items():
        out = aws.out("s3", "cp", "--no-progress", f"s3://{aws_bucket}/files/{name}", f"down/{name}", cwd=tmp_path)
        assert out.strip() == f"download: s3://{aws_bucket}/files/{name} to down/{name}"
        assert (down / name).read_bytes() == body, name


def test_cp_from_stdin_and_to_stdout(aws: AwsCli, scratch: str) -> None:
    body = os.urandom(100 * 1024) + "ünïcode\n".encode()
    result = aws.run("s3", "cp", "-", f"s3://{scratch}/streamed", input=body, check=False)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert aws.run("s3", "cp", f"s3://{scratch}/streamed", "-").stdout == body


def test_ls_with_prefixes(aws: AwsCli, populated: str) -> None:
    root = aws.out("s3", "ls", f"s3://{populated}")
    assert sorted(ls_names(root)) == ["photos/", "physics.txt", "top.txt", "zz/"]
    assert ls_sizes(root) == {"physics.txt": 7, "top.txt": 1}
    photos = aws.out("s3", "ls", f"s3://{populated}/photos/")
    assert sorted(ls_names(photos)) == ["2024/", "2025/", "readme"]
    assert ls_sizes(photos) == {"readme": 6}
    assert ls_sizes(aws.out("s3", "ls", f"s3://{populated}/photos/2024/")) == {"a.jpg": 2, "b.jpg": 3}
    # Without a trailing slash the last part is a plain prefix.
    assert sorted(ls_names(aws.out("s3", "ls", f"s3://{populated}/ph"))) == ["photos/", "physics.txt"]
    assert ls_sizes(aws.out("s3", "ls", "--recursive", f"s3://{populated}")) == {k: len(v) for k, v in TREE.items()}
    assert ls_names(aws.out("s3", "ls", "--recursive", f"s3://{populated}/photos/20")) == [
        "photos/2024/a.jpg", "photos/2024/b.jpg", "photos/2024/sub/c.jpg", "photos/2025/d.jpg"]


def test_sync_a_tree_up_and_back_down(aws: AwsCli, aws_bucket: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    files = {
        "top.txt": b"top\n",
        "empty": b"",
        "a/b/c/deep.bin": os.urandom(30_000),
        "a/x y.txt": b"spaces in the name\n",
        "with space/fïlé ünï 日本.txt": "unicode ✓\n".encode(),
        "ünï dir/n.json": b'{"n": 1}\n',
        "big/blob.bin": os.urandom(2 * 1024 * 1024 + 3),
    }
    for rel, data in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    remote = f"s3://{aws_bucket}/backup/"
    up = aws.out("s3", "sync", "--no-progress", str(src), remote)
    assert sorted(line.split(" to ", 1)[1] for line in up.splitlines()) == sorted(remote + k for k in files)
    assert ls_sizes(aws.out("s3", "ls", "--recursive", remote)) == {f"backup/{k}": len(v) for k, v in files.items()}
    # Nothing changed: a second sync uploads nothing.
    assert aws.out("s3", "sync", "--no-progress", str(src), remote) == ""
    dst = tmp_path / "dst"
    aws.run("s3", "sync", "--no-progress", remote, str(dst))
    assert tree_of(dst) == files
    # --delete removes what is gone locally.
    (src / "a" / "x y.txt").unlink()
    out = aws.out("s3", "sync", "--no-progress", "--delete", str(src), remote)
    assert out.strip() == f"delete: s3://{aws_bucket}/backup/a/x y.txt"
    assert ls_sizes(aws.out("s3", "ls", "--recursive", remote)) == {
        f"backup/{k}": len(v) for k, v in files.items() if k != "a/x y.txt"}


def test_rm_and_rm_recursive(aws: AwsCli, aws_bucket: str, tmp_path: Path) -> None:
    keys = ["keep.txt", "logs/1.log", "logs/2.log", "logs/old/3.log", "logsbook.txt"]
    for rel in keys:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(rel.encode())
    aws.run("s3", "cp", "--recursive", "--no-progress", str(tmp_path), f"s3://{aws_bucket}/")
    assert aws.out("s3", "rm", f"s3://{aws_bucket}/keep.txt").strip() == f"delete: s3://{aws_bucket}/keep.txt"
    out = aws.out("s3", "rm", "--recursive", f"s3://{aws_bucket}/logs/")
    assert sorted(out.splitlines()) == [f"delete: s3://{aws_bucket}/{k}" for k in keys[1:4]]
    assert ls_names(aws.out("s3", "ls", "--recursive", f"s3://{aws_bucket}")) == ["logsbook.txt"]
    out = aws.out("s3", "rm", "--recursive", f"s3://{aws_bucket}")
    assert out.strip() == f"delete: s3://{aws_bucket}/logsbook.txt"
    assert aws.out("s3", "ls", "--recursive", f"s3://{aws_bucket}") == ""


# -- aws s3api ----------------------------------------------------------------------------


def test_s3api_put_object_metadata_and_content_type(aws: AwsCli, scratch: str, tmp_path: Path) -> None:
    (tmp_path / "doc.html").write_bytes(b"<p>hello</p>")
    put = aws.json("s3api", "put-object", "--bucket", scratch, "--key", "docs/doc.html", "--body", "doc.html",
                   "--metadata", "owner=alice,camera=pi-cam-2", "--content-type", "text/html; charset=utf-8",
                   cwd=tmp_path)
    assert put["ETag"] == f'"{hashlib.md5(b"<p>hello</p>").hexdigest()}"'
    head = aws.json("s3api", "head-object", "--bucket", scratch, "--key", "docs/doc.html")
    assert head["ContentType"] == "text/html; charset=utf-8"
    assert head["Metadata"] == {"owner": "alice", "camera": "pi-cam-2"}
    assert head["ContentLength"] == 12
    assert head["ETag"] == put["ETag"]
    missing = aws.run("s3api", "head-object", "--bucket", scratch, "--key", "docs/none", check=False)
    assert missing.returncode != 0 and b"404" in missing.stderr


def test_s3api_list_objects_v2_with_prefix_and_delimiter(aws: AwsCli, populated: str) -> None:
    root = aws.json("s3api", "list-objects-v2", "--bucket", populated, "--delimiter", "/")
    assert [c["Key"] for c in root["Contents"]] == ["physics.txt", "top.txt"]
    assert [p["Prefix"] for p in root["CommonPrefixes"]] == ["photos/", "zz/"]
    # --no-paginate: one ListObjectsV2 response as the server sent it, KeyCount included.
    sub = aws.json("s3api", "list-objects-v2", "--no-paginate", "--bucket", populated, "--prefix", "photos/",
                   "--delimiter", "/")
    assert [c["Key"] for c in sub["Contents"]] == ["photos/readme"]
    assert [p["Prefix"] for p in sub["CommonPrefixes"]] == ["photos/2024/", "photos/2025/"]
    assert sub["Prefix"] == "photos/" and sub["Delimiter"] == "/" and sub["KeyCount"] == 3
    assert sub["IsTruncated"] is False
    flat = aws.json("s3api", "list-objects-v2", "--bucket", populated, "--prefix", "photos/2024/")
    assert [(c["Key"], c["Size"]) for c in flat["Contents"]] == [
        ("photos/2024/a.jpg", 2), ("photos/2024/b.jpg", 3), ("photos/2024/sub/c.jpg", 4)]
    assert not flat.get("CommonPrefixes")
    none = aws.json("s3api", "list-objects-v2", "--bucket", populated, "--prefix", "nothing")
    assert not none.get("Contents") and not none.get("CommonPrefixes")
    # The CLI's own pagination (--page-size 3: several requests) returns every key once, in order.
    paged = aws.json("s3api", "list-objects-v2", "--bucket", populated, "--page-size", "3")
    assert [c["Key"] for c in paged["Contents"]] == sorted(TREE)


def test_s3api_get_object_range(aws: AwsCli, scratch: str, tmp_path: Path) -> None:
    body = os.urandom(100_000)
    (tmp_path / "src").write_bytes(body)
    aws.run("s3api", "put-object", "--bucket", scratch, "--key", "ranged", "--body", "src", cwd=tmp_path)
    for rng, expected in [("bytes=0-9", body[:10]), ("bytes=70000-70099", body[70000:70100]),
                          ("bytes=-7", body[-7:]), ("bytes=99990-", body[99990:])]:
        got = aws.json("s3api", "get-object", "--bucket", scratch, "--key", "ranged", "--range", rng, "part",
                       cwd=tmp_path)
        assert (tmp_path / "part").read_bytes() == expected, rng
        assert got["ContentLength"] == len(expected), rng
        assert got["ContentRange"].endswith(f"/{len(body)}"), rng
    aws.run("s3api", "get-object", "--bucket", scratch, "--key", "ranged", "whole", cwd=tmp_path)
    assert (tmp_path / "whole").read_bytes() == body
