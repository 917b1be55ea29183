"""The replicas anti-entropy talks to: a device of this node, or a peer's over the
internal API. Both answer the same five questions, so the sync logic has one shape."""

from __future__ import annotations

import asyncio
from typing import Protocol

from edgestore.cluster.ringstate import device_url
from edgestore.cluster.rpc import InternalClient
from edgestore.errors import PeerError
from edgestore.ring import Device
from edgestore.store.device import LocalDevice
from edgestore.store.meta import BlockRef, PartitionIndex
from edgestore.store.records import Record

__all__ = ["Replica", "LocalReplica", "RemoteReplica", "Digests"]

Digests = dict[int, tuple[int, int]]   # partition -> (digest, rows)


class Replica(Protocol):
    label: str

    async def digests(self) -> Digests: ...

    async def partition_state(self, part: int) -> tuple[PartitionIndex, set[str]]: ...

    async def put_records(self, part: int, records: list[Record]) -> None: ...

    async def put_block(self, block: str, data: bytes, ref: BlockRef) -> None: ...

    async def put_refs(self, part: int, refs: list[BlockRef]) -> None: ...


class LocalReplica:
    def __init__(self, device: LocalDevice) -> None:
        self.device = device
        self.label = f"local:{device.name}"

    async def digests(self) -> Digests:
        return await self.device.meta.digests()

    async def partition_state(self, part: int) -> tuple[PartitionIndex, set[str]]:
        return await self.device.partition_state(part)

    async def put_records(self, part: int, records: list[Record]) -> None:
        await self.device.meta.merge((r, part) for r in records)

    async def put_block(self, block: str, data: bytes, ref: BlockRef) -> None:
        await self.device.store_block(block, data, ref)

    async def put_refs(self, part: int, refs: list[BlockRef]) -> None:
        blocks = self.device.blocks
        missing = await asyncio.to_thread(lambda: {r.block for r in refs if not blocks.path_of(r.block).exists()})
        await self.device.meta.add_block_refs(refs, missing)


class RemoteReplica:
    def __init__(self, client: InternalClient, device: Device) -> None:
        self._client = client
        self._url = device_url(device)
        self._base = f"/_internal/{device.device}"
        self.label = f"{self._url}/{device.device}"

    async def _json(self, method: str, path: str, payload: object = None,
                    params: dict[str, str] | None = None) -> object:
        status, answer = await self._client.request_json(method, self._url, self._base + path, params, payload)
        if status != 200:
            raise PeerError(self._url, f"{method} {path} answered {status}", status)
        return answer

    async def digests(self) -> Digests:
        answer = await self._json("GET", "/digests")
        assert isinstance(answer, dict)
        return {int(part): (int(d), int(n)) for part, (d, n) in answer["parts"].items()}

    async def partition_state(self, part: int) -> tuple[PartitionIndex, set[str]]:
        answer = await self._json("GET", f"/part/{part}/index")
        assert isinstance(answer, dict)
        return PartitionIndex.from_wire(answer["index"]), {str(b) for b in answer["present"]}

    async def put_records(self, part: int, records: list[Record]) -> None:
        await self._json("POST", "/records", [r.to_wire() for r in records], {"part": str(part)})

    async def put_block(self, block: str, data: bytes, ref: BlockRef) -> None:
        status, _ = await self._client.request(
            "PUT", self._url, f"{self._base}/block/{block}",
            {"ref": ref.ref, "ts": str(ref.ts), "part": str(ref.part)}, data, digest=block)
        if status != 201:
            raise PeerError(self._url, f"block push answered {status}", status)

    async def put_refs(self, part: int, refs: list[BlockRef]) -> None:
        await self._json("POST", f"/part/{part}/refs", [[r.block, r.ref, r.ts] for r in refs])
