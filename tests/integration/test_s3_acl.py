"""Canned ACLs on buckets and objects, honoured for anonymous callers and for other accounts;
Get/Put Bucket/Object Acl, by header and by AccessControlPolicy body."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from botocore.exceptions import ClientError
from conftest import make_s3

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
AUTHENTICATED = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"


def anonymous(cluster: Any, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    parts = urlsplit(cluster.endpoint)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request(method, quote(path, safe="/?=&"), body=body)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def other(cluster: Any) -> Any:
    """A client of another account."""
    out = subprocess.run([sys.executable, "-m", "edgestore", "user", "create", "neighbours", "bob", "--json",
                          "--cluster", str(cluster.data / "cluster.json")], capture_output=True, timeout=60,
                         check=True)
    keys = json.loads(out.stdout)
    return make_s3(cluster.endpoint, keys["access_key"], keys["secret_key"])


def grants(policy: dict[str, Any]) -> set[tuple[str, str]]:
    out = set()
    for grant in policy["Grants"]:
        grantee = grant["Grantee"]
        out.add((grantee.get("URI") or grantee.get("ID"), grant["Permission"]))
    return out


def test_private_by_default(cluster: Any, s3: Any, other: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"private")
    assert anonymous(cluster, "GET", f"/{bucket}/k")[0] == 403
    status, body = anonymous(cluster, "GET", f"/{bucket}")
    assert status == 403 and b"<Code>AccessDenied</Code>" in body
    assert anonymous(cluster, "PUT", f"/{bucket}/new", b"x")[0] == 403
    with pytest.raises(ClientError) as exc:
        other.get_object(Bucket=bucket, Key="k")
    assert exc.value.response["Error"]["Code"] == "AccessDenied"
    account = cluster.info["account"]
    assert grants(s3.get_bucket_acl(Bucket=bucket)) == {(account, "FULL_CONTROL")}
    assert s3.get_bucket_acl(Bucket=bucket)["Owner"]["ID"] == account


def test_public_read_bucket_lists_but_objects_keep_their_own_acl(cluster: Any, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="private.txt", Body=b"p")
    s3.put_object(Bucket=bucket, Key="public.txt", Body=b"shared", ACL="public-read")
    s3.put_bucket_acl(Bucket=bucket, ACL="public-read")
    assert grants(s3.get_bucket_acl(Bucket=bucket)) >= {(ALL_USERS, "READ")}
    status, body = anonymous(cluster, "GET", f"/{bucket}?list-type=2")
    assert status == 200 and b"<Key>public.txt</Key>" in body and b"<Key>private.txt</Key>" in body
    assert anonymous(cluster, "GET", f"/{bucket}/public.txt") == (200, b"shared")
    assert anonymous(cluster, "HEAD", f"/{bucket}/public.txt")[0] == 200
    assert anonymous(cluster, "GET", f"/{bucket}/private.txt")[0] == 403
    assert anonymous(cluster, "PUT", f"/{bucket}/intruder", b"x")[0] == 403
    assert grants(s3.get_object_acl(Bucket=bucket, Key="public.txt")) >= {(ALL_USERS, "READ")}


def test_public_read_write_bucket_takes_anonymous_writes(cluster: Any, s3: Any, bucket: str) -> None:
    s3.create_bucket(Bucket=f"{bucket}-drop", ACL="public-read-write")
    assert anonymous(cluster, "PUT", f"/{bucket}-drop/upload.bin", b"dropped off")[0] == 200
    assert s3.get_object(Bucket=f"{bucket}-drop", Key="upload.bin")["Body"].read() == b"dropped off"
    assert anonymous(cluster, "DELETE", f"/{bucket}-drop/upload.bin")[0] == 204
    assert s3.list_objects_v2(Bucket=f"{bucket}-drop")["KeyCount"] == 0
    assert anonymous(cluster, "DELETE", f"/{bucket}-drop")[0] == 403  # only the owner deletes the bucket


def test_authenticated_read_is_for_users_not_strangers(cluster: Any, s3: Any, other: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="members", Body=b"for users", ACL="authenticated-read")
    assert other.get_object(Bucket=bucket, Key="members")["Body"].read() == b"for users"
    assert anonymous(cluster, "GET", f"/{bucket}/members")[0] == 403
    assert grants(s3.get_object_acl(Bucket=bucket, Key="members")) >= {(AUTHENTICATED, "READ")}
    with pytest.raises(ClientError):  # reading an object is not listing its bucket
        other.list_objects_v2(Bucket=bucket)


def test_acl_changes_by_policy_body_and_keep_last_modified(cluster: Any, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="o", Body=b"data")
    before = s3.head_object(Bucket=bucket, Key="o")["LastModified"]
    owner = s3.get_object_acl(Bucket=bucket, Key="o")["Owner"]
    s3.put_object_acl(Bucket=bucket, Key="o", AccessControlPolicy={"Owner": owner, "Grants": [
        {"Grantee": {"Type": "CanonicalUser", "ID": owner["ID"]}, "Permission": "FULL_CONTROL"},
        {"Grantee": {"Type": "Group", "URI": ALL_USERS}, "Permission": "READ"}]})
    assert anonymous(cluster, "GET", f"/{bucket}/o") == (200, b"data")
    assert s3.head_object(Bucket=bucket, Key="o")["LastModified"] == before
    s3.put_object_acl(Bucket=bucket, Key="o", ACL="private")
    assert anonymous(cluster, "GET", f"/{bucket}/o")[0] == 403
    with pytest.raises(ClientError) as exc:
        s3.put_object_acl(Bucket=bucket, Key="o", AccessControlPolicy={"Owner": owner, "Grants": [
            {"Grantee": {"Type": "CanonicalUser", "ID": "someone-else"}, "Permission": "READ"}]})
    assert exc.value.response["Error"]["Code"] == "NotImplemented"
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="bad-acl", Body=b"x", ACL="no-such-acl")  # type: ignore[arg-type]
    assert exc.value.response["Error"]["Code"] == "InvalidArgument"


def test_anonymous_cannot_list_buckets_or_create(cluster: Any) -> None:
    assert anonymous(cluster, "GET", "/")[0] == 403
    assert anonymous(cluster, "PUT", "/anonymous-bucket")[0] == 403
