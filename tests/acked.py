"""What a cluster acknowledged, to check against after faults: tests that kill or damage
nodes use it to prove no acknowledged write was lost."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from botocore.exceptions import ClientError


class Model:
    """What the cluster acknowledged: key -> body, or None once deleted."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes | None] = {}
        self.lock = threading.Lock()

    def put(self, s3: Any, bucket: str, key: str, body: bytes) -> None:
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        with self.lock:
            self.objects[key] = body

    def delete(self, s3: Any, bucket: str, key: str) -> None:
        s3.delete_object(Bucket=bucket, Key=key)
        with self.lock:
            self.objects[key] = None

    def check(self, s3: Any, bucket: str) -> None:
        listed = set()
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            listed |= {c["Key"] for c in page.get("Contents", [])}
        live = {k for k, v in self.objects.items() if v is not None}
        assert live <= listed, f"acknowledged keys missing from the listing: {sorted(live - listed)[:5]}"
        for key, body in self.objects.items():
            if body is None:
                with pytest.raises(ClientError) as exc:
                    s3.head_object(Bucket=bucket, Key=key)
                assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
                assert key not in listed
            else:
                assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body, key
