"""Protocol-neutral domain errors, raised below the API layer.

    EdgestoreError
    ├── ConfigError              the node's configuration is unusable
    ├── StoreError               a local device failed us
    │   ├── DeviceInUse          another process holds the device
    │   ├── CorruptBlock         a block failed its checksum (it has been quarantined)
    │   └── NoSuchBlock          a block is not on this device
    ├── ModelError               a request conflicts with what is stored
    │   ├── NoSuchBucket
    │   ├── NoSuchObject
    │   ├── BucketExists         (owned_by_requester tells whose it is)
    │   ├── BucketNotEmpty
    │   ├── DigestMismatch       a body is not what its declared MD5 says
    │   ├── NoSuchUpload
    │   ├── BadPartList          a multipart completion names parts wrongly (reason says how)
    │   └── BrokenLargeObject    a large object's segment is missing or changed, or its manifests loop
    └── ClusterError             the cluster could not do what was asked
        ├── QuorumNotReached     fewer replicas than a quorum answered
        ├── BlockUnavailable     no replica could serve a block
        └── PeerError            one internal request to a peer failed

The APIs map these to their wire errors in one table each (api/s3/router.py).
"""

from __future__ import annotations

__all__ = [
    "EdgestoreError", "ConfigError", "StoreError", "DeviceInUse", "CorruptBlock", "NoSuchBlock",
    "ModelError", "NoSuchBucket", "NoSuchObject", "BucketExists", "BucketNotEmpty",
    "NoSuchUpload", "BadPartList", "DigestMismatch", "BrokenLargeObject",
    "ClusterError", "QuorumNotReached", "BlockUnavailable", "PeerError",
]


class EdgestoreError(Exception):
    pass


class ConfigError(EdgestoreError):
    pass


class StoreError(EdgestoreError):
    pass


class DeviceInUse(StoreError):
    def __init__(self, name: str, path: object) -> None:
        super().__init__(f"device {name} ({path}) is in use by another edgestore process")
        self.name = name


class CorruptBlock(StoreError):
    def __init__(self, block: str, device: str) -> None:
        super().__init__(f"block {block} on device {device} failed its checksum")
        self.block = block
        self.device = device


class NoSuchBlock(StoreError):
    def __init__(self, block: str) -> None:
        super().__init__(f"block {block} not found")
        self.block = block


class ModelError(EdgestoreError):
    pass


class NoSuchBucket(ModelError):
    def __init__(self, bucket: str) -> None:
        super().__init__(f"no bucket {bucket!r}")
        self.bucket = bucket


class NoSuchObject(ModelError):
    def __init__(self, bucket: str, key: str) -> None:
        super().__init__(f"no object {key!r} in bucket {bucket!r}")
        self.bucket = bucket
        self.key = key


class BucketExists(ModelError):
    def __init__(self, bucket: str, owned_by_requester: bool) -> None:
        super().__init__(f"bucket {bucket!r} exists")
        self.bucket = bucket
        self.owned_by_requester = owned_by_requester


class BucketNotEmpty(ModelError):
    def __init__(self, bucket: str) -> None:
        super().__init__(f"bucket {bucket!r} is not empty")
        self.bucket = bucket


class DigestMismatch(ModelError):
    def __init__(self, expected: bytes, got: bytes) -> None:
        super().__init__(f"the body's MD5 is {got.hex()}, not the {expected.hex()} declared")
        self.expected = expected
        self.got = got


class BodyTooSlow(ModelError):
    """A body stored in blocks took so long to arrive that garbage collection could take
    its first blocks for an abandoned upload's before its record is written."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the body took {seconds:.0f} s to arrive; send it in parts (multipart upload, "
                         "segments) or faster")
        self.seconds = seconds


class NoSuchUpload(ModelError):
    def __init__(self, upload_id: str) -> None:
        super().__init__(f"no multipart upload {upload_id!r}")
        self.upload_id = upload_id


class BadPartList(ModelError):
    """reason: "missing" (a part or its ETag does not match), "order" (not ascending) or
    "too_small" (a part but the last under the minimum size)."""

    def __init__(self, reason: str, part_number: int, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.part_number = part_number


class BrokenLargeObject(ModelError):
    """A Swift large object cannot be assembled as its manifest says (Swift answers 409)."""


class ClusterError(EdgestoreError):
    pass


class QuorumNotReached(ClusterError):
    def __init__(self, what: str, needed: int, got: int) -> None:
        super().__init__(f"{what}: {got} of the {needed} replicas needed answered")
        self.needed = needed
        self.got = got


class BlockUnavailable(ClusterError):
    def __init__(self, block: str) -> None:
        super().__init__(f"no replica of block {block} could be read")
        self.block = block


class PeerError(ClusterError):
    """An internal request failed: connection refused, timeout, or an error status."""

    def __init__(self, peer: str, reason: str, status: int | None = None) -> None:
        super().__init__(f"{peer}: {reason}")
        self.peer = peer
        self.status = status
