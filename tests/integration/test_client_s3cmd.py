"""The real `s3cmd` (Debian's package) against a real cluster, path-style, three ways:
SigV4 over HTTP, SigV2 over HTTP (`signature_v2 = True`), and SigV4 over HTTPS trusting the
cluster's CA. Files over `multipart_chunk_size_mb` (15 MiB, s3cmd's default) go up as
multipart uploads.

What s3cmd sends that other clients do not: `?uploads`, `?acl`, `?delete` with no `=`, a
`x-amz-meta-s3cmd-attrs` header on every upload, `x-amz-storage-class: STANDARD`; `info`
reads `?policy` and `?cors` (a 404 there prints "none") and `?acl`. `cp`, `mv` and `modify`
are CopyObject (modify onto itself with `x-amz-metadata-directive: REPLACE`) followed by
GET `?acl` of the source and PUT `?acl` (an AccessControlPolicy body) on the target;
`setacl` is GET then PUT `?acl`; `put --acl-public` sends `x-amz-acl: public-read`.
`sync --delete-removed`, `del --recursive` and `rb --recursive` are DeleteObjects."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from conftest import make_s3, unique_bucket_name

S3CMD = shutil.which("s3cmd")
if S3CMD is None:
    pytest.skip("s3cmd is not installed (apt-get install s3cmd)", allow_module_level=True)

S3CMD_TIMEOUT_S = 120.0
MIB = 1024 * 1024
CHUNK_MIB = 15


class S3cmd:
    """Runs `s3cmd -c CONFIG ...` with a private config and home, nothing from the environment."""

    def __init__(self, home: Path, host: str, access_key: str, secret_key: str, *, sigv2: bool,
                 ca_file: str | None) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.config = home / "s3cfg"
        lines = [
            "[default]",
            f"access_key = {access_key}",
            f"secret_key = {secret_key}",
            f"host_base = {host}",
            f"host_bucket = {host}",  # no %(bucket)s: path-style requests
            "bucket_location = us-east-1",
            f"use_https = {ca_file is not None}",
            f"signature_v2 = {sigv2}",
            "enable_multipart = True",
            f"multipart_chunk_size_mb = {CHUNK_MIB}",
            "progress_meter = False",
            "socket_timeout = 60",
            "max_retries = 2",
        ]
        if ca_file is not None:
            lines += [f"ca_certs_file = {ca_file}", "check_ssl_certificate = True", "check_ssl_hostname = True"]
        self.config.write_text("\n".join(lines) + "\n")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3CMD"))}
        self.env.update({"HOME": str(home), "LC_ALL": "C.UTF-8", "PYTHONIOENCODING": "utf-8"})

    def run(self, *args: str, check: bool = True, cwd: Path | None = None,
            input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        assert S3CMD is not None
        result = subprocess.run([S3CMD, "-c", str(self.config), *args], capture_output=True, env=self.env,
                                cwd=cwd, input=input, timeout=S3CMD_TIMEOUT_S,
                                stdin=None if input is not None else subprocess.DEVNULL)
        if check:
            assert result.returncode == 0, (
                f"s3cmd {' '.join(args)} exited {result.returncode}\nstdout: {result.stdout.decode(errors='replace')}"
                f"\nstderr: {result.stderr.decode(errors='replace')}")
        return result

    def out(self, *args: str, **kwargs: Any) -> str:
        return self.run(*args, **kwargs).stdout.decode()


VARIANTS = {"sigv4": (False, False), "sigv2": (True, False), "sigv4-https": (False, True)}


@pytest.fixture(scope="module", params=list(VARIANTS))
def s3cmd(request: pytest.FixtureRequest, cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> S3cmd:
    sigv2, https = VARIANTS[request.param]
    endpoint = cluster.info["s3_https_endpoint"] if https else cluster.endpoint
    return S3cmd(tmp_path_factory.mktemp(f"s3cmd-{request.param}"), endpoint.split("://", 1)[1].rstrip("/"),
                 *cluster.credentials, sigv2=sigv2, ca_file=cluster.info["ca_file"] if https else None)


@pytest.fixture
def bucket_name(request: pytest.FixtureRequest) -> str:
    return unique_bucket_name("s3cmd-", request)


@pytest.fixture
def s3cmd_bucket(s3cmd: S3cmd, bucket_name: str) -> str:
    assert s3cmd.out("mb", f"s3://{bucket_name}").strip() == f"Bucket 's3://{bucket_name}/' created"
    return bucket_name


@pytest.fixture(scope="module")
def boto(cluster: Any) -> Any:
    """boto3, to check what s3cmd left on the server."""
    return make_s3(cluster.endpoint, *cluster.credentials)


def keys_of(boto: Any, bucket: str, prefix: str = "") -> dict[str, int]:
    pages = boto.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {c["Key"]: c["Size"] for page in pages for c in page.get("Contents", [])}


def ls_keys(listing: str) -> dict[str, int]:
    """`s3cmd ls` lines: `DATE TIME SIZE s3://bucket/key` and `DIR s3://bucket/prefix/`."""
    found = {}
    for line in listing.splitlines():
        parts = line.split(None, 3)
        if len(parts) == 2 and parts[0] == "DIR":
            found[parts[1]] = -1
        elif len(parts) == 4:
            found[parts[3]] = int(parts[2])
    return found


def info_fields(text: str) -> dict[str, str]:
    fields = {}
    for line in text.splitlines()[1:]:
        key, _, value = line.strip().partition(":")
        fields[key] = value.strip()
    return fields


def tree_of(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def write_tree(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)


# -- buckets ------------------------------------------------------------------------------


def test_mb_ls_and_rb(s3cmd: S3cmd, bucket_name: str) -> None:
    assert s3cmd.out("mb", f"s3://{bucket_name}").strip() == f"Bucket 's3://{bucket_name}/' created"
    assert f"s3://{bucket_name}" in s3cmd.out("ls").split()
    assert s3cmd.out("ls", f"s3://{bucket_name}") == ""
    again = s3cmd.run("mb", f"s3://{bucket_name}", check=False)
    assert again.returncode != 0 and b"BucketAlreadyOwnedByYou" in again.stderr
    assert s3cmd.out("rb", f"s3://{bucket_name}").strip() == f"Bucket 's3://{bucket_name}/' removed"
    assert f"s3://{bucket_name}" not in s3cmd.out("ls").split()
    missing = s3cmd.run("ls", f"s3://{bucket_name}", check=False)
    assert missing.returncode != 0 and b"NoSuchBucket" in missing.stderr


def test_rb_recursive_removes_the_objects_first(s3cmd: S3cmd, s3cmd_bucket: str, boto: Any) -> None:
    for key in ["a", "b/c", "b/d"]:
        boto.put_object(Bucket=s3cmd_bucket, Key=key, Body=key.encode())
    refused = s3cmd.run("rb", f"s3://{s3cmd_bucket}", check=False)
    assert refused.returncode != 0 and b"BucketNotEmpty" in refused.stderr
    # With --recursive s3cmd empties the bucket with DeleteObjects, then deletes it.
    out = s3cmd.out("rb", "--recursive", "--force", f"s3://{s3cmd_bucket}")
    assert out.strip().splitlines()[-1] == f"Bucket 's3://{s3cmd_bucket}/' removed"
    assert s3cmd_bucket not in {b["Name"] for b in boto.list_buckets()["Buckets"]}


# -- objects ------------------------------------------------------------------------------


def test_put_get_info_and_del(s3cmd: S3cmd, s3cmd_bucket: str, boto: Any, tmp_path: Path) -> None:
    small = b"hello from s3cmd\n"
    big = os.urandom(20 * MIB + 5)
    (tmp_path / "small.txt").write_bytes(small)
    (tmp_path / "big.bin").write_bytes(big)
    remote = f"s3://{s3cmd_bucket}/dir/"
    s3cmd.run("put", "small.txt", "big.bin", remote, cwd=tmp_path)
    assert ls_keys(s3cmd.out("ls", remote)) == {f"{remote}big.bin": len(big), f"{remote}small.txt": len(small)}

    # Above 15 MiB: one 15 MiB part and one 5 MiB part, so a multipart ETag.
    chunk = CHUNK_MIB * MIB
    parts = [big[:chunk], big[chunk:]]
    expected = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest() + "-2"
    assert boto.head_object(Bucket=s3cmd_bucket, Key="dir/big.bin")["ETag"] == f'"{expected}"'
    assert boto.head_object(Bucket=s3cmd_bucket, Key="dir/small.txt")["ETag"] == f'"{hashlib.md5(small).hexdigest()}"'

    down = tmp_path / "down"
    down.mkdir()
    s3cmd.run("get", f"{remote}small.txt", f"{remote}big.bin", str(down) + "/")
    assert (down / "small.txt").read_bytes() == small
    assert (down / "big.bin").read_bytes() == big
    # get to stdout.
    assert s3cmd.run("get", f"{remote}small.txt", "-").stdout == small

    info = info_fields(s3cmd.out("info", f"{remote}small.txt"))
    assert info["File size"] == str(len(small))
    assert info["MIME type"] == "text/plain"
    assert info["MD5 sum"] == hashlib.md5(small).hexdigest()
    assert "FULL_CONTROL" in info["ACL"]  # s3cmd parsed our GetObjectAcl answer
    # s3cmd keeps the file's stat() in metadata, with its own MD5 for multipart uploads.
    assert "md5:" + hashlib.md5(big).hexdigest() in info_fields(s3cmd.out("info", f"{remote}big.bin"))[
        "x-amz-meta-s3cmd-attrs"]

    assert s3cmd.out("del", f"{remote}small.txt").strip() == f"delete: '{remote}small.txt'"
    assert keys_of(boto, s3cmd_bucket) == {"dir/big.bin": len(big)}
    missing = s3cmd.run("get", f"{remote}small.txt", str(tmp_path / "nothing"), check=False)
    assert missing.returncode != 0 and b"does not exist" in missing.stderr


def test_put_from_stdin_and_odd_names(s3cmd: S3cmd, s3cmd_bucket: str, boto: Any, tmp_path: Path) -> None:
    body = os.urandom(100_000)
    s3cmd.run("put", "-", f"s3://{s3cmd_bucket}/streamed.bin", input=body)
    assert boto.get_object(Bucket=s3cmd_bucket, Key="streamed.bin")["Body"].read() == body
    for name in ["with space+plus&amp=.txt", "ünï (1).txt", "a%2Fb.txt"]:
        (tmp_path / "f").write_bytes(name.encode())
        s3cmd.run("put", str(tmp_path / "f"), f"s3://{s3cmd_bucket}/odd/{name}")
        assert s3cmd.run("get", f"s3://{s3cmd_bucket}/odd/{name}", "-").stdout == name.encode()
    assert sorted(keys_of(boto, s3cmd_bucket, "odd/")) == [
        "odd/a%2Fb.txt", "odd/with space+plus&amp=.txt", "odd/ünï (1).txt"]


def test_ls_with_prefixes_and_la(s3cmd: S3cmd, s3cmd_bucket: str, boto: Any) -> None:
    for i, key in enumerate(["top.txt", "photos/2024/a.jpg", "photos/2024/b.jpg", "photos/readme", "physics"]):
        boto.put_object(Bucket=s3cmd_bucket, Key=key, Body=b"x" * (i + 1))
    root = f"s3://{s3cmd_bucket}/"
    assert ls_keys(s3cmd.out("ls", root)) == {f"{root}photos/": -1, f"{root}physics": 5, f"{root}top.txt": 1}
    assert ls_keys(s3cmd.out("ls", f"{root}photos/")) == {f"{root}photos/2024/": -1, f"{root}photos/readme": 4}
    assert ls_keys(s3cmd.out("ls", "--recursive", f"{root}photos")) == {
        f"{root}photos/2024/a.jpg": 2, f"{root}photos/2024/b.jpg": 3, f"{root}photos/readme": 4}
    # la: the top level of every bucket.
    everything = s3cmd.out("la").split()
    assert f"{root}photos/" in everything and f"{root}top.txt" in everything
    du = s3cmd.out("du", root).split()
    assert du[0] == str(1 + 2 + 3 + 4 + 5) and du[1] == "5"


def test_cp_mv_and_modify_use_copy_object(s3cmd: S3cmd, s3cmd_bucket: str, boto: Any, tmp_path: Path) -> None:
    body = os.urandom(3 * MIB)
    (tmp_path / "orig.bin").write_bytes(body)
    root = f"s3://{s3cmd_bucket}/"
    s3cmd.run("put", "orig.bin", root, cwd=tmp_path)
    s3cmd.run("cp", f"{root}orig.bin", f"{root}copy.bin")
    s3cmd.run("mv", f"{root}copy.bin", f"{root}moved/copy.bin")
    assert keys_of(boto, s3cmd_bucket) == {"orig.bin": len(body), "moved/copy.bin": len(body)}
    assert boto.get_object(Bucket=s3cmd_bucket, Key="moved/copy.bin")["Body"].read() == body
    s3cmd.run("modify", "--add-header=x-amz-meta-camera:pi-cam-2", "--mime-type=image/png", f"{root}orig.bin")
    head = boto.head_object(Bucket=s3cmd_bucket, Key="orig.bin")
    assert head["Metadata"]["camera"] == "pi-cam-2"
    assert head["ContentType"] == "image/png"
    assert boto.get_object(Bucket=s3cmd_bucket, Key="orig.bin")["Body"].read() == body


# -- sync ---------------------------------------------------------------------------------


def test_sync_a_directory_up_and_back(s3cmd: S3cmd, s3cmd_bucket: str, boto: Any, tmp_path: Path) -> None:
    files = {
        "top.txt": b"top\n",
        "empty": b"",
        "a/b/c/deep.bin": os.urandom(30_000),
        "a/x y.txt": b"spaces in the name\n",
        "ünï dir/fïlé 日本.txt": "unicode ✓\n".encode(),
        "big/blob.bin": os.urandom(2 * MIB + 1),
    }
    src, back = tmp_path / "src", tmp_path / "back"
    write_tree(src, files)
    remote = f"s3://{s3cmd_bucket}/backup/"
    s3cmd.run("sync", str(src) + "/", remote)
    assert keys_of(boto, s3cmd_bucket) == {f"backup/{k}": len(v) for k, v in files.items()}
    # Nothing changed: a second sync uploads nothing.
    assert "upload:" not in s3cmd.out("sync", str(src) + "/", remote)

    s3cmd.run("sync", remote, str(back) + "/")
    assert tree_of(back) == files

    # A changed file goes up again; --delete-removed deletes what is gone (a DeleteObjects).
    files["top.txt"] = b"top, changed\n"
    (src / "top.txt").write_bytes(files["top.txt"])
    (src / "a" / "x y.txt").unlink()
    del files["a/x y.txt"]
    out = s3cmd.out("sync", "--delete-removed", str(src) + "/", remote)
    assert f"delete: '{remote}a/x y.txt'" in out.splitlines()
    assert keys_of(boto, s3cmd_bucket) == {f"backup/{k}": len(v) for k, v in files.items()}
    assert boto.get_object(Bucket=s3cmd_bucket, Key="backup/top.txt")["Body"].read() == files["top.txt"]

    s3cmd.run("sync", "--delete-removed", remote, str(back) + "/")
    assert tree_of(back) == files


def test_del_recursive(s3cmd: S3cmd, s3cmd_bucket: str, boto: Any) -> None:
    keys = ["keep.txt", "logs/1.log", "logs/2.log", "logs/old/3.log", "logsbook.txt"]
    for key in keys:
        boto.put_object(Bucket=s3cmd_bucket, Key=key, Body=key.encode())
    out = s3cmd.out("del", "--recursive", f"s3://{s3cmd_bucket}/logs/")
    assert sorted(out.splitlines()) == [f"delete: 's3://{s3cmd_bucket}/{k}'" for k in keys[1:4]]
    assert sorted(keys_of(boto, s3cmd_bucket)) == ["keep.txt", "logsbook.txt"]


# -- ACLs ---------------------------------------------------------------------------------


def anonymous_get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_public_and_private_acls(s3cmd: S3cmd, s3cmd_bucket: str, cluster: Any, tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_bytes(b"for everyone\n")
    root = f"s3://{s3cmd_bucket}/"
    plain = f"{cluster.endpoint}/{s3cmd_bucket}/"
    s3cmd.run("put", "--acl-public", "f.txt", f"{root}public.txt", cwd=tmp_path)
    s3cmd.run("put", "f.txt", f"{root}private.txt", cwd=tmp_path)
    assert anonymous_get(plain + "public.txt") == (200, b"for everyone\n")
    status, body = anonymous_get(plain + "private.txt")
    assert status == 403 and b"AccessDenied" in body
    assert "*anon*: READ" in s3cmd.out("info", f"{root}public.txt")

    assert "ACL set to Public" in s3cmd.out("setacl", "--acl-public", f"{root}private.txt")
    assert anonymous_get(plain + "private.txt") == (200, b"for everyone\n")
    assert "ACL set to Private" in s3cmd.out("setacl", "--acl-private", f"{root}public.txt")
    assert anonymous_get(plain + "public.txt")[0] == 403
