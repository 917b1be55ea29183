"""The volume plugin's definitions: which volumes exist, their buckets and options, and which
container mounts (Docker's mount IDs) hold each one. Kept in one small JSON file, replaced
atomically on every change, so a restarted plugin knows its volumes and the mounts still held."""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgestore.ring.io import atomic_write

from edgestore.model.buckets import valid_bucket_name

from .libfuse import CHOICES

__all__ = ["Volume", "VolumeError", "VolumeStore", "OPTIONS", "bucket_for", "check_name", "check_options"]

STATE_FILE = ".volumes.json"  # volume names cannot start with '.', so no volume's directory clashes
FORMAT = 1
# What `docker volume create -o NAME=VALUE` may say; the rest come from the plugin's own options.
OPTIONS = frozenset({"bucket", "endpoint", "access-key", "secret-key", "region", "ca-file", "cache-size", "ttl",
                     "libfuse"})
# Docker's own rule for volume names; it also keeps names from leaving the state directory.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]+$")


class VolumeError(Exception):
    """A request the plugin refuses: an HTTP status and the one-line reason Docker shows."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise VolumeError(400, "a volume Name (a string) is required")
    if not _NAME.match(name) or len(name) > 255:
        raise VolumeError(400, f"invalid volume name {name!r}: letters, digits, '_', '.', '-', not first")
    return name


def bucket_for(name: str) -> str:
    """The default bucket of a volume: its name made a valid bucket name (lower case, other
    characters as '-', at least 3 and at most 63 of them)."""
    bucket = re.sub(r"-+", "-", re.sub(r"[^a-z0-9]", "-", name.lower())).strip("-")
    if len(bucket) < 3:
        bucket = f"{bucket}-vol".lstrip("-")
    bucket = bucket[:63].rstrip("-")
    if not valid_bucket_name(bucket):
        raise VolumeError(400, f"volume {name!r} makes no valid bucket name ({bucket!r}): pass -o bucket=NAME")
    return bucket


@dataclass
class Volume:
    name: str
    bucket: str
    options: dict[str, str]  # as given at create: endpoint, keys, cache size...
    created_at: str
    mount_ids: list[str] = field(default_factory=list)  # who holds the mount; empty: not mounted

    def status(self) -> dict[str, Any]:
        """What `docker volume inspect` shows: never the keys."""
        shown = {k: v for k, v in self.options.items() if k not in ("access-key", "secret-key")}
        return {"bucket": self.bucket, "mounts": len(self.mount_ids), **shown}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class VolumeStore:
    """The volumes under ``state_dir``: each mounted at ``state_dir/NAME/_data``."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / STATE_FILE
        self.volumes: dict[str, Volume] = {}

    def load(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            raise VolumeError(500, f"{self.path} is unreadable: {exc}") from None
        if data.get("format") != FORMAT:
            raise VolumeError(500, f"{self.path} has an unknown format {data.get('format')!r}")
        self.volumes = {v["name"]: Volume(**v) for v in data["volumes"]}

    def save(self) -> None:
        """Written on every change; 0600, since it holds the volumes' secret keys."""
        data = {"format": FORMAT, "volumes": [asdict(v) for v in self.volumes.values()]}
        atomic_write(self.path, json.dumps(data, indent=1, sort_keys=True).encode(), mode=0o600)

    def get(self, name: Any) -> Volume:
        volume = self.volumes.get(check_name(name))
        if volume is None:
            raise VolumeError(404, f"no such volume: {name}")
        return volume

    def mountpoint(self, volume: Volume) -> Path:
        return self.state_dir / volume.name / "_data"

    def add(self, name: str, opts: dict[str, str]) -> Volume:
        volume = Volume(name, opts.get("bucket") or bucket_for(name), dict(opts), _now())
        self.volumes[name] = volume
        self.save()
        return volume

    def log_file(self, volume: Volume) -> Path:
        return self.state_dir / volume.name / "mount.log"

    def remove(self, volume: Volume) -> None:
        """Forget the volume and take away its (empty, unmounted) directories; never data."""
        del self.volumes[volume.name]
        self.save()
        self.log_file(volume).unlink(missing_ok=True)
        for path in (self.mountpoint(volume), self.mountpoint(volume).parent):
            try:
                path.rmdir()
            except FileNotFoundError:
                pass
            except OSError:
                break  # something else was put there: not ours to delete


def check_options(opts: Any) -> dict[str, str]:
    """``Opts`` of a Create: a map of known names to strings (Docker sends null for none)."""
    if opts is None:
        return {}
    if not isinstance(opts, dict) or not all(isinstance(v, str) for v in opts.values()):
        raise VolumeError(400, "Opts must be an object of strings")
    unknown = sorted(set(opts) - OPTIONS)
    if unknown:
        raise VolumeError(400, f"unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(OPTIONS))}")
    if opts.get("libfuse", "auto") not in CHOICES:
        raise VolumeError(400, f"libfuse must be one of {', '.join(CHOICES)}")
    return {k: v for k, v in opts.items() if v != ""}
