"""Segment compaction: the space of overwritten and deleted small bodies comes back.

A segment file (segments.py) is never rewritten in place. Once most of a sealed segment's
bytes are dead (no row names them), its live bodies are copied into the active segment,
their rows repointed in a commit, and the file unlinked, so disk use stays within about
twice the live bytes. Copies go at a limited byte rate, as every background pass here
does: an SD card's writes are what this saves.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any, Iterable

from edgestore.errors import StoreError
from edgestore.repair.limiter import ByteRateLimiter
from edgestore.repair.progress import PassProgress, running_pass
from edgestore.store.device import LocalDevice

__all__ = ["SegmentCompaction", "CompactionProgress", "DEAD_SHARE", "parse_dead_share"]

log = logging.getLogger(__name__)

# A sealed segment is compacted once at least this share of its bytes is dead: copying its
# live rest then costs at most as many bytes as it frees.
DEAD_SHARE = 0.5
INTERVAL_S = 600.0
BYTES_PER_S = 2 * 1024 * 1024


def parse_dead_share(value: Any) -> float:
    """The `dead_share` option (from the admin job API's JSON): a number in (0, 1];
    ValueError otherwise, which the admin API answers with 400. 0 would copy every
    segment, dead bytes or none; above 1 or NaN, none, without a word."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"dead_share must be a number in (0, 1], not {value!r}")
    share = float(value)
    if not 0 < share <= 1:   # NaN fails this too
        raise ValueError(f"dead_share must be in (0, 1], not {value!r}")
    return share


@dataclass
class CompactionProgress(PassProgress):
    segments_checked: int = 0
    segments_compacted: int = 0
    bytes_copied: int = 0
    bytes_freed: int = 0
    errors: int = 0


class SegmentCompaction:
    name = "compaction"

    def __init__(self, devices: Iterable[LocalDevice], interval_s: float = INTERVAL_S,
                 limiter: ByteRateLimiter | None = None) -> None:
        self._devices = list(devices)
        self.interval_s = interval_s
        self._limiter = limiter or ByteRateLimiter(BYTES_PER_S)
        self.progress = CompactionProgress()

    async def run_once(self, dead_share: Any = DEAD_SHARE, **_: Any) -> dict[str, Any]:
        share = parse_dead_share(dead_share)   # before the pass: a bad option is the caller's 400
        with running_pass(CompactionProgress(), self.progress) as progress:
            self.progress = progress
            for device in self._devices:
                try:
                    await self._compact_device(device, share, progress)
                except StoreError as exc:
                    log.warning("compaction of device %s: %s", device.name, exc)
                    progress.errors += 1
        return asdict(progress)

    async def _compact_device(self, device: LocalDevice, dead_share: float, progress: CompactionProgress) -> None:
        meta = device.meta
        for seg, live, size in await meta.segment_usage():
            progress.segments_checked += 1
            if size > 0 and live > size * (1 - dead_share):
                continue
            existed = meta.segments.file(seg).exists()   # a lost file is not compacted by being gone
            try:
                progress.bytes_copied += await meta.compact_segment(seg, self._limiter.take)
            except StoreError as exc:   # one bad segment must not keep the later ones from compaction
                log.warning("compaction of segment %d of device %s: %s", seg, device.name, exc)
                progress.errors += 1
                continue
            if existed and not meta.segments.file(seg).exists():
                progress.segments_compacted += 1
                progress.bytes_freed += size
