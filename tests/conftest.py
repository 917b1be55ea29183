"""Shared fixtures: a real cluster per test module, and real S3 clients pointed at it."""

from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from clusterlib import LocalCluster  # noqa: E402

_bucket_numbers = itertools.count()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    local = LocalCluster(tmp_path_factory.mktemp("cluster"), extra=["--tls"])
    try:
        local.start()
        yield local
    finally:
        local.stop()


def make_s3(endpoint: str, access_key: str, secret_key: str, verify: str | bool | None = None,
            attempts: int = 2, **config: Any) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=access_key,
                        aws_secret_access_key=secret_key, region_name="us-east-1", verify=verify,
                        config=Config(retries={"max_attempts": attempts, "mode": "standard"}, **config))


@pytest.fixture(scope="module")
def s3(cluster: LocalCluster) -> Any:
    """boto3 with its default configuration (checksums, payload signing) against node 0."""
    return make_s3(cluster.endpoint, *cluster.credentials)


@pytest.fixture(scope="module")
def s3_https(cluster: LocalCluster) -> Any:
    """boto3 with its defaults over HTTPS, where it sends aws-chunked bodies with trailing
    CRC32 checksums (STREAMING-UNSIGNED-PAYLOAD-TRAILER) on every PutObject."""
    return make_s3(cluster.info["s3_https_endpoint"], *cluster.credentials, verify=cluster.info["ca_file"])


@pytest.fixture
def bucket(s3: Any, request: pytest.FixtureRequest) -> str:
    name = unique_bucket_name("t", request)
    s3.create_bucket(Bucket=name)
    return name


def unique_bucket_name(prefix: str, request: pytest.FixtureRequest) -> str:
    """A valid S3 bucket name, unique in this test run, that says which test made it."""
    name = f"{prefix}{os.getpid()}-{next(_bucket_numbers)}-{request.node.name[:30]}".lower()
    return "".join(c if c.isalnum() else "-" for c in name)[:63].strip("-")


@pytest.fixture(scope="module")
def swift_conn(cluster: LocalCluster) -> Any:
    """python-swiftclient's Connection for the default admin, with TempAuth v1 login."""
    from swiftclient.client import Connection

    return Connection(authurl=cluster.endpoint + "/auth/v1.0", user="default:admin", key=cluster.credentials[1],
                      retries=0, timeout=60)
