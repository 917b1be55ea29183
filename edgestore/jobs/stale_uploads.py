"""Abort multipart uploads that were started and then abandoned (a client that crashed,
a laptop that left the site): their parts would otherwise hold disk space forever.

Each node looks at the upload records on its own devices and aborts, through the
cluster, those older than `max_age_s`. Replicas of one partition may abort the same
upload; aborting is a tombstone write, so doing it twice is harmless.
"""

from __future__ import annotations

import time
from typing import Any

from edgestore.clock import ts_to_seconds
from edgestore.model.multipart import Uploads
from edgestore.store.device import LocalDevice
from edgestore.store.records import KIND_UPLOAD

__all__ = ["StaleUploads"]

PAGE = 500


class StaleUploads:
    name = "stale-uploads"

    def __init__(self, devices: list[LocalDevice], uploads: Uploads, max_age_s: float, interval_s: float) -> None:
        self._devices = devices
        self._uploads = uploads
        self.max_age_s = max_age_s
        self.interval_s = interval_s

    async def run_once(self, max_age_s: float | None = None, **_: Any) -> dict[str, Any]:
        cutoff = time.time() - (self.max_age_s if max_age_s is None else float(max_age_s))
        seen = aborted = 0
        for device in self._devices:
            after = None
            while True:
                page = await device.meta.list(KIND_UPLOAD, "", after, PAGE)
                for record in page:
                    seen += 1
                    if record.deleted or ts_to_seconds(int(record.value.get("initiated_ts", record.ts))) > cutoff:
                        continue
                    account, bucket, upload_id = record.name.split("/", 2)
                    upload = await self._uploads.find(account, bucket, upload_id)
                    if upload is not None:
                        await self._uploads.abort(upload)
                        aborted += 1
                if len(page) < PAGE:
                    break
                after = page[-1].name
        return {"uploads_seen": seen, "aborted": aborted}
