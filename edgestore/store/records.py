"""Records: the rows every piece of metadata is made of, and how two versions merge.

A record is identified by (kind, name). Its placement path decides its partition:
all objects of one bucket share the bucket's partition, so listing a bucket is one
ordered query on one replica set, like a Swift container database.

Merge law (last writer wins): the record with the larger (ts, node) pair wins; a
tombstone (deleted=True) is an ordinary record that wins the same way. The merge is
commutative, associative and idempotent, so replicas converge whatever order updates
arrive in.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field, replace
from typing import Any

import xxhash

__all__ = [
    "Record", "newest", "placement_path",
    "KIND_OBJECT", "KIND_BUCKET", "KIND_BUCKET_NAME", "KIND_USER", "KIND_SWIFT_USER", "KIND_UPLOAD", "KIND_PART",
    "KIND_VERSION", "KIND_EXPIRY", "KIND_ACCOUNT", "KIND_DATAUSE", "VERSION_SEPARATOR", "WRITTEN_TS", "version_name",
    "new_version_id",
    "object_name", "split_object_name", "bucket_record_name",
]

KIND_OBJECT = "object"        # name "account/bucket/key"; placed on "/account/bucket"
KIND_BUCKET = "bucket"        # name "account/bucket";     placed on "/account"
KIND_BUCKET_NAME = "bucketname"  # name "bucket" -> owning account; placed on "/.bucketnames/bucket"
KIND_USER = "user"            # name = access key;       placed on "/.users/access-key"
KIND_SWIFT_USER = "swiftuser"  # name "account:user" -> access key; placed on "/.swiftusers/account:user"
KIND_UPLOAD = "upload"        # name "account/bucket/upload-id"; placed on "/account/bucket"
KIND_PART = "part"            # name "account/bucket/upload-id/00001"; placed on "/account/bucket"
KIND_VERSION = "version"      # name "account/bucket/key\x00version-id"; placed on "/account/bucket"
# name "QQ/DELETE_AT/account/bucket/key" (queue and unix seconds zero-padded, so due
# entries sort first); placed on "/.expiry/QQ": a few queues every node can scan
KIND_EXPIRY = "expiry"
# name "DATA_ID/account/bucket/key": an object that shares another's blocks (a copy), so
# garbage collection finds every user of a data_id; placed on "/.datause/DATA_ID"
KIND_DATAUSE = "datause"
KIND_ACCOUNT = "account"      # name "account" -> Swift account metadata; placed on "/account"
VERSION_SEPARATOR = "\x00"   # sorts below every character a key may hold: a key's versions stay together
# A tombstone's value key: when it was written, if it is stamped in the past (just after
# the version it deletes, so that any later write wins): reclaimed by that, not its stamp.
WRITTEN_TS = "written_ts"


@dataclass(frozen=True, slots=True)
class Record:
    kind: str
    name: str
    ts: int
    node: str
    deleted: bool = False
    value: dict[str, Any] = field(default_factory=dict)
    data: bytes | None = None  # an object's bytes, when small enough to live inline

    @property
    def version(self) -> tuple[int, str]:
        return (self.ts, self.node)

    def without_data(self) -> Record:
        return replace(self, data=None) if self.data is not None else self

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "kind": self.kind, "name": self.name, "ts": self.ts, "node": self.node,
            "deleted": self.deleted, "value": self.value,
        }
        if self.data is not None:
            wire["data"] = base64.b64encode(self.data).decode()
        return wire

    @classmethod
    def from_wire(cls, wire: dict[str, Any]) -> Record:
        data = wire.get("data")
        return cls(
            kind=str(wire["kind"]), name=str(wire["name"]), ts=int(wire["ts"]),
            node=str(wire["node"]), deleted=bool(wire["deleted"]), value=dict(wire["value"]),
            data=base64.b64decode(data) if data is not None else None,
        )


def newest(records: list[Record | None]) -> Record | None:
    """The winner of a last-writer-wins merge of versions of one record."""
    best: Record | None = None
    for rec in records:
        if rec is not None and (best is None or rec.version > best.version):
            best = rec
    return best


def object_name(account: str, bucket: str, key: str) -> str:
    return f"{account}/{bucket}/{key}"


def split_object_name(name: str) -> tuple[str, str, str]:
    account, bucket, key = name.split("/", 2)
    return account, bucket, key


def version_name(object_record_name: str, version_id: str) -> str:
    return f"{object_record_name}{VERSION_SEPARATOR}{version_id}"


def new_version_id(ts: int, node: str) -> str:
    """A version id that sorts newest first (the timestamp inverted), unique per writer."""
    return f"{(1 << 64) - 1 - ts:016x}{xxhash.xxh32_hexdigest(node.encode())[:4]}"


def bucket_record_name(account: str, bucket: str) -> str:
    return f"{account}/{bucket}"


def placement_path(kind: str, name: str) -> str:
    """The ring path whose partition holds a record (account and bucket names hold no '/')."""
    if kind in (KIND_OBJECT, KIND_UPLOAD, KIND_PART, KIND_VERSION):
        account, bucket, _ = name.split("/", 2)
        return f"/{account}/{bucket}"
    if kind == KIND_BUCKET:
        return "/" + name.split("/", 1)[0]
    if kind == KIND_ACCOUNT:
        return "/" + name
    if kind == KIND_BUCKET_NAME:
        return f"/.bucketnames/{name}"
    if kind == KIND_USER:
        return f"/.users/{name}"
    if kind == KIND_SWIFT_USER:
        return f"/.swiftusers/{name}"
    if kind == KIND_EXPIRY:
        return "/.expiry/" + name.split("/", 1)[0]
    if kind == KIND_DATAUSE:
        return "/.datause/" + name.split("/", 1)[0]
    raise ValueError(f"unknown record kind {kind!r}")


def block_path(block: str) -> str:
    """The ring path of a block (its id is random enough to spread blocks evenly)."""
    return f"/.blocks/{block}"
