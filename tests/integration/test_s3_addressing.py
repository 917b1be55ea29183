"""Path-style and virtual-hosted-style addressing of the same bucket (`edgestore up` serves
BUCKET.localhost), with SigV4 and SigV2 signatures over the Host the client used."""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import urlsplit

from s3raw import send, sign_claiming


def test_virtual_hosted_style_reaches_the_same_objects(cluster: Any, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="dir/hello.txt", Body=b"hello")
    port = urlsplit(cluster.endpoint).port
    host = f"{bucket}.localhost:{port}"
    access_key, secret_key = cluster.credentials
    empty = hashlib.sha256(b"").hexdigest()
    headers = sign_claiming(f"http://{host}", access_key, secret_key, "GET", "/dir/hello.txt", empty,
                            {"Host": host})
    resp = send(cluster.endpoint, "GET", "/dir/hello.txt", headers)
    assert resp.status == 200 and resp.body == b"hello"
    body = b"via the virtual host"
    headers = sign_claiming(f"http://{host}", access_key, secret_key, "PUT", "/vh.txt",
                            hashlib.sha256(body).hexdigest(), {"Host": host, "Content-Length": str(len(body))})
    assert send(cluster.endpoint, "PUT", "/vh.txt", headers, body).status == 200
    assert s3.get_object(Bucket=bucket, Key="vh.txt")["Body"].read() == body
    headers = sign_claiming(f"http://{host}", access_key, secret_key, "GET", "/?list-type=2", empty, {"Host": host})
    listing = send(cluster.endpoint, "GET", "/?list-type=2", headers)
    assert listing.status == 200
    assert b"<Key>vh.txt</Key>" in listing.body and b"<Key>dir/hello.txt</Key>" in listing.body


def test_boto3_virtual_addressing_with_sigv2(cluster: Any, bucket: str, s3: Any) -> None:
    """botocore itself building virtual-hosted URLs (and signing /bucket/key for SigV2)."""
    import boto3
    from botocore.config import Config
    port = urlsplit(cluster.endpoint).port
    client = boto3.client("s3", endpoint_url=f"http://localhost:{port}", region_name="us-east-1",
                          aws_access_key_id=cluster.credentials[0], aws_secret_access_key=cluster.credentials[1],
                          config=Config(s3={"addressing_style": "virtual"}, signature_version="s3"))
    requests: list[str] = []
    client.meta.events.register("before-send.s3.*", lambda request, **_: requests.append(request.url))
    # Send to 127.0.0.1 whatever the name resolves to: the Host header carries the bucket.
    import socket
    real = socket.getaddrinfo

    def loopback(host: str, *args: Any, **kwargs: Any) -> Any:
        return real("127.0.0.1" if host.endswith("localhost") else host, *args, **kwargs)

    socket.getaddrinfo = loopback  # type: ignore[assignment]
    try:
        client.put_object(Bucket=bucket, Key="v2", Body=b"sigv2 over a virtual host")
        got = client.get_object(Bucket=bucket, Key="v2")["Body"].read()
    finally:
        socket.getaddrinfo = real  # type: ignore[assignment]
    assert requests[0].startswith(f"http://{bucket}.localhost:{port}/v2")
    assert got == b"sigv2 over a virtual host"
