"""What the volume plugin does for each request: volumes are buckets; the first container
mount of a volume runs `edgestore mount` (a daemon of its own, so a plugin restart leaves
running containers their files) and later ones share it; the last unmount takes it down."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgestore.model.buckets import valid_bucket_name

from .mount import MountError, is_mounted, unmount
from .s3client import S3Client, S3Error
from .volumes import Volume, VolumeError, VolumeStore, bucket_for, check_name, check_options

__all__ = ["Backend", "VolumeDriver"]

log = logging.getLogger("edgestore.volumes")

MOUNT_TIMEOUT_S = 90.0  # `edgestore mount` itself gives up after 30 s of waiting for FUSE
BUCKET_TIMEOUT_S = 15.0


@dataclass
class Backend:
    """The plugin's own settings: where volumes without their own endpoint and keys go."""

    endpoint: str | None = None
    access_key: str | None = None
    secret_key: str | None = None
    region: str | None = None
    ca_file: str | None = None
    cache_dir: Path = Path("/var/cache/edgestore/volumes")
    mount_options: dict[str, str] = field(default_factory=dict)  # cache-size, ttl, libfuse for every volume

    def settings(self, volume_opts: dict[str, str]) -> dict[str, str]:
        """The volume's options over the plugin's: endpoint, keys, region, cache..."""
        mine = {"endpoint": self.endpoint, "access-key": self.access_key, "secret-key": self.secret_key,
                "region": self.region, "ca-file": self.ca_file, **self.mount_options}
        merged = {k: v for k, v in mine.items() if v}
        merged.update(volume_opts)
        if not all(merged.get(k) for k in ("endpoint", "access-key", "secret-key")):
            raise VolumeError(400, "no endpoint and keys: pass -o endpoint=URL -o access-key=K -o secret-key=S, "
                                   "or start the plugin with --cluster or --endpoint and keys")
        return merged


def _alive(path: Path) -> bool:
    """Mounted, and its filesystem process still answers (a killed one gives ENOTCONN)."""
    if not is_mounted(path):
        return False
    try:
        os.stat(path)
    except OSError:
        return False
    return True


def _ensure_bucket(bucket: str, settings: dict[str, str]) -> None:
    """The volume's bucket exists afterwards: made if missing, as `docker volume create` promises."""
    try:
        client = S3Client(settings["endpoint"], bucket, settings["access-key"], settings["secret-key"],
                          settings.get("region", "us-east-1"), timeout_s=BUCKET_TIMEOUT_S,
                          ca_file=settings.get("ca-file"))
    except ValueError as exc:
        raise VolumeError(400, str(exc)) from None
    try:
        if client.request("HEAD", None, ok=(200, 404)).status == 404:
            client.request("PUT", None)
    except S3Error as exc:
        status = 400 if 400 <= exc.status < 500 else 502
        raise VolumeError(status, f"bucket {bucket} at {settings['endpoint']}: {exc}") from None
    finally:
        client.close()


class VolumeDriver:
    def __init__(self, store: VolumeStore, backend: Backend) -> None:
        self.store = store
        self.backend = backend
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    def start(self) -> None:
        """Load the volumes; mounts that did not outlive the plugin are no longer held by anyone."""
        self.store.load()
        changed = False
        for volume in self.store.volumes.values():
            if volume.mount_ids and not _alive(self.store.mountpoint(volume)):
                log.info("volume %s: its mount is gone; %d mount ID(s) dropped", volume.name, len(volume.mount_ids))
                self._take_down(volume)
                volume.mount_ids.clear()
                changed = True
        if changed:
            self.store.save()

    # -- the requests ----------------------------------------------------------------------

    async def create(self, name: Any, opts: Any) -> None:
        name, opts = check_name(name), check_options(opts)
        async with self._locks[name]:
            existing = self.store.volumes.get(name)
            if existing is not None:
                # Docker creates again what it does not know (after losing its own state): fine
                # with no options or the same ones; other options would be silently ignored.
                if opts and opts != existing.options:
                    raise VolumeError(409, f"volume {name} already exists with other options")
                return
            settings = self.backend.settings(opts)
            bucket = opts.get("bucket") or bucket_for(name)
            if not valid_bucket_name(bucket):
                raise VolumeError(400, f"{bucket!r} is not a valid bucket name")
            await asyncio.to_thread(_ensure_bucket, bucket, settings)
            self.store.add(name, opts)
            log.info("volume %s created (bucket %s)", name, bucket)

    async def remove(self, name: Any) -> None:
        async with self._locks[check_name(name)]:
            volume = self.store.get(name)
            in_use: bool = await asyncio.to_thread(_alive, self.store.mountpoint(volume))
            if volume.mount_ids and in_use:
                raise VolumeError(409, f"volume {name} is in use ({len(volume.mount_ids)} mount(s))")
            await asyncio.to_thread(self._take_down, volume)
            self.store.remove(volume)
            with contextlib.suppress(OSError):
                (self.backend.cache_dir / volume.name).rmdir()  # empty once unmounted
            log.info("volume %s removed (bucket %s kept)", name, volume.bucket)

    async def mount(self, name: Any, mount_id: Any) -> str:
        mount_id = self._check_id(mount_id)
        async with self._locks[check_name(name)]:
            volume = self.store.get(name)
            mountpoint = self.store.mountpoint(volume)
            if not await asyncio.to_thread(_alive, mountpoint):  # a stuck mount must not stop the plugin
                if volume.mount_ids:  # held by mounts that died: nobody holds them now
                    volume.mount_ids.clear()
                    self.store.save()
                await self._mount(volume, mountpoint)
            if mount_id not in volume.mount_ids:
                volume.mount_ids.append(mount_id)
                self.store.save()
            return str(mountpoint)

    async def unmount(self, name: Any, mount_id: Any) -> None:
        mount_id = self._check_id(mount_id)
        async with self._locks[check_name(name)]:
            volume = self.store.get(name)
            if mount_id not in volume.mount_ids:
                raise VolumeError(409, f"volume {name} is not mounted for ID {mount_id!r}")
            if len(volume.mount_ids) == 1:
                await asyncio.to_thread(self._take_down, volume, True)
                log.info("volume %s unmounted", name)
            volume.mount_ids.remove(mount_id)
            self.store.save()

    def path(self, name: Any) -> str:
        volume = self.store.get(name)
        return self._shown_mountpoint(volume)

    def get(self, name: Any) -> dict[str, Any]:
        volume = self.store.get(name)
        return {"Name": volume.name, "Mountpoint": self._shown_mountpoint(volume), "CreatedAt": volume.created_at,
                "Status": volume.status()}

    def list(self) -> list[dict[str, str]]:
        return [{"Name": v.name, "Mountpoint": self._shown_mountpoint(v)} for v in self.store.volumes.values()]

    # -- helpers ----------------------------------------------------------------------------

    @staticmethod
    def _check_id(mount_id: Any) -> str:
        # Docker before 1.12 sent no ID: all its mounts then count as one.
        if mount_id is None:
            return ""
        if not isinstance(mount_id, str):
            raise VolumeError(400, "ID must be a string")
        return mount_id

    def _shown_mountpoint(self, volume: Volume) -> str:
        """Docker takes an empty Mountpoint as "not mounted now"."""
        return str(self.store.mountpoint(volume)) if volume.mount_ids else ""

    def _take_down(self, volume: Volume, strict: bool = False) -> None:
        mountpoint = self.store.mountpoint(volume)
        if not is_mounted(mountpoint):
            return
        try:
            unmount(mountpoint)
        except MountError as exc:
            if strict:
                raise VolumeError(500, f"volume {volume.name}: {exc}") from None
            log.warning("volume %s: %s", volume.name, exc)

    async def _mount(self, volume: Volume, mountpoint: Path) -> None:
        settings = self.backend.settings(volume.options)
        mountpoint.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "edgestore", "mount", volume.bucket, str(mountpoint),
                   "--endpoint", settings["endpoint"], "--cache-dir", str(self.backend.cache_dir / volume.name),
                   "--log-file", str(self.store.log_file(volume))]
        for option in ("region", "ca-file", "cache-size", "ttl", "libfuse"):
            if settings.get(option):
                command += [f"--{option}", settings[option]]
        # Keys in the environment, not in the command line every user can read in ps.
        env = dict(os.environ, AWS_ACCESS_KEY_ID=settings["access-key"], AWS_SECRET_ACCESS_KEY=settings["secret-key"])
        proc = await asyncio.create_subprocess_exec(*command, env=env, cwd=self.store.state_dir,
                                                    stdin=asyncio.subprocess.DEVNULL,
                                                    stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        try:
            _, stderr = await asyncio.wait_for(proc.communicate(), MOUNT_TIMEOUT_S)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            await asyncio.to_thread(self._take_down, volume)
            raise VolumeError(500, f"volume {volume.name}: no mount within {MOUNT_TIMEOUT_S:.0f} s") from None
        if proc.returncode != 0 or not await asyncio.to_thread(_alive, mountpoint):
            reason = stderr.decode(errors="replace").strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
            raise VolumeError(500, f"volume {volume.name}: {reason[0]}")
        log.info("volume %s: bucket %s mounted on %s", volume.name, volume.bucket, mountpoint)
