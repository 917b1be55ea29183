"""The ring file: one file holds the whole builder state; nodes load placement from it.

Format 1 is gzip (mtime 0, level 6) of canonical JSON (sorted keys, no spaces, ASCII)::

    {"checksum": "sha256:<hex of the canonical JSON of payload>",
     "format": 1,
     "payload": {
        "part_power": 16, "replicas": 3, "min_part_hours": 1, "version": 7,
        "salt": "<32 hex digits>", "next_dev_id": 12,
        "devices": [{"id": 0, "region": 1, "zone": 1, "ip": "10.0.0.1", "port": 6200,
                     "device": "sda", "weight": 1.0}, ...],          # by id
        "removed": [3],                       # removed devices not yet drained
        "assignment": ["<base64>", ...],      # one per replica: uint32 LE device ids,
                                              # 4294967295 = unassigned
        "last_moved": "<base64>"}}            # float64 LE seconds per partition, -inf = never

Equal states give equal bytes, so rings can be compared by file hash. A reader checks the
format number, that gzip ended cleanly (truncation) and the checksum, before trusting a
field. Files are replaced atomically (`atomic_write`), so a reader sees the old or the new
ring, never half of one, even across a power cut.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import io
import json
import os
import sys
import tempfile
import zlib
from array import array
from typing import Any

from edgestore.ring.builder import RingBuilder
from edgestore.ring.devices import device_from_dict
from edgestore.ring.errors import (
    ChecksumMismatch,
    RingError,
    RingFileCorrupt,
    RingFileError,
    RingValidationError,
    UnsupportedFormat,
)
from edgestore.ring.placement import Ring
from edgestore.ring.ringdata import rows_to_bytes

__all__ = [
    "FORMAT",
    "atomic_write",
    "builder_from_bytes",
    "builder_to_bytes",
    "load_builder",
    "load_ring",
    "save_builder",
]

FORMAT = 1
SUPPORTED_FORMATS = (FORMAT,)
_GZIP_LEVEL = 6  # level 9 is 6x slower on a 2**16-partition ring for 7% less
MAX_FILE_BYTES = 256 * 1024 * 1024  # far above any real ring; stops a gzip bomb


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii")


def _checksum(payload: Any) -> str:
    return "sha256:" + hashlib.sha256(_canonical(payload)).hexdigest()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def builder_to_bytes(builder: RingBuilder) -> bytes:
    """The file bytes of a builder (same state, same bytes)."""
    last_moved = builder.last_moved()
    if sys.byteorder == "big":
        last_moved.byteswap()
    payload = {
        "part_power": builder.part_power,
        "replicas": builder.replicas,
        "min_part_hours": builder.min_part_hours,
        "version": builder.version,
        "salt": builder.salt.hex(),
        "next_dev_id": builder.next_dev_id,
        "devices": [dev.to_dict() for dev in builder.devices],
        "removed": list(builder.removed_device_ids),
        "assignment": [_b64(chunk) for chunk in rows_to_bytes(builder.rows())],
        "last_moved": _b64(last_moved.tobytes()),
    }
    document = {"format": FORMAT, "checksum": _checksum(payload), "payload": payload}
    return gzip.compress(_canonical(document), compresslevel=_GZIP_LEVEL, mtime=0)


def _decode_array(path: str, text: Any, typecode: str, count: int, what: str) -> array[Any]:
    if not isinstance(text, str):
        raise RingFileCorrupt(path, f"{what} is not a base64 string")
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise RingFileCorrupt(path, f"{what} is not valid base64") from exc
    arr = array(typecode)
    if len(raw) != count * arr.itemsize:
        raise RingFileCorrupt(path, f"{what} has {len(raw)} bytes, expected {count * arr.itemsize}")
    arr.frombytes(raw)
    if sys.byteorder == "big":
        arr.byteswap()
    return arr


def _read_document(path: str, data: bytes) -> dict[str, Any]:
    """Unzip, parse and verify; return the checked payload."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data), mode="rb") as stream:
            raw = stream.read(MAX_FILE_BYTES + 1)
    except (EOFError, OSError, zlib.error) as exc:
        raise RingFileCorrupt(path, f"not a complete gzip file ({exc})") from exc
    if len(raw) > MAX_FILE_BYTES:
        raise RingFileCorrupt(path, "uncompressed ring file is too large")
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise RingFileCorrupt(path, f"not JSON ({exc})") from exc
    if not isinstance(document, dict):
        raise RingFileCorrupt(path, "not a JSON object")
    if document.get("format") not in SUPPORTED_FORMATS:
        raise UnsupportedFormat(path, document.get("format"), SUPPORTED_FORMATS)
    payload = document.get("payload")
    stored = document.get("checksum")
    if not isinstance(payload, dict) or not isinstance(stored, str):
        raise RingFileCorrupt(path, "missing payload or checksum")
    computed = _checksum(payload)
    if stored != computed:
        raise ChecksumMismatch(path, stored, computed)
    return payload


def builder_from_bytes(data: bytes, path: str = "<bytes>") -> RingBuilder:
    """Parse file bytes into a builder; `RingFileError` subclasses on any problem."""
    payload = _read_document(path, data)
    try:
        part_power = payload["part_power"]
        replicas = payload["replicas"]
        if not isinstance(part_power, int) or not isinstance(replicas, int) \
                or not 0 <= part_power <= 32 or not 1 <= replicas <= 64:
            raise RingFileCorrupt(path, "part_power or replicas out of range")
        parts = 1 << part_power
        assignment = payload["assignment"]
        if not isinstance(assignment, list) or len(assignment) != replicas:
            raise RingFileCorrupt(path, "assignment must have one row per replica")
        rows = [_decode_array(path, text, "I", parts, f"assignment row {r}")
                for r, text in enumerate(assignment)]
        last_moved = _decode_array(path, payload["last_moved"], "d", parts, "last_moved")
        salt_hex = payload["salt"]
        if not isinstance(salt_hex, str):
            raise RingFileCorrupt(path, "salt is not a hex string")
        devices = payload["devices"]
        removed = payload["removed"]
        if not isinstance(devices, list) or not isinstance(removed, list):
            raise RingFileCorrupt(path, "devices and removed must be lists")
        return RingBuilder.from_state(
            part_power=part_power,
            replicas=replicas,
            min_part_hours=payload["min_part_hours"],
            salt=bytes.fromhex(salt_hex),
            version=payload["version"],
            next_dev_id=payload["next_dev_id"],
            devices=[device_from_dict(dev) for dev in devices],
            removed=removed,
            rows=rows,
            last_moved=last_moved,
        )
    except RingFileError:
        raise
    except (RingError, KeyError, TypeError, ValueError) as exc:
        detail = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
        raise RingFileCorrupt(path, detail) from exc


def _read(path: str | os.PathLike[str]) -> tuple[str, bytes]:
    name = os.fspath(path)
    with open(name, "rb") as handle:
        return name, handle.read(MAX_FILE_BYTES + 1)


def load_builder(path: str | os.PathLike[str]) -> RingBuilder:
    """Load the builder saved at `path` (OSError if it cannot be read)."""
    name, data = _read(path)
    return builder_from_bytes(data, name)


def load_ring(path: str | os.PathLike[str]) -> Ring:
    """Load the placement `Ring` from a ring file: what a node serves with.

    `NotRebalanced` if the file was never rebalanced."""
    builder = load_builder(path)
    try:
        data = builder.to_ringdata()
    except RingValidationError as exc:
        raise RingFileCorrupt(os.fspath(path), str(exc)) from exc
    return Ring(data)


def save_builder(builder: RingBuilder, path: str | os.PathLike[str]) -> None:
    """Write the builder to `path` atomically."""
    atomic_write(path, builder_to_bytes(builder))


def atomic_write(path: str | os.PathLike[str], data: bytes, mode: int = 0o644) -> None:
    """Replace `path` with `data` so that readers and a power cut see the old file or the
    new one, never a mix: temp file in the same directory, fsync, rename, fsync the
    directory. The temp file is removed if anything fails."""
    name = os.path.abspath(os.fspath(path))
    directory = os.path.dirname(name)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(name)}.", suffix=".tmp",
                               dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.replace(tmp, name)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
