"""The internal API a node serves to its peers: records and blocks of its own devices.

Mounted under /_internal/ (a prefix no bucket name can take). Every request must carry
a valid cluster signature (see rpc.py), checked by `internal_auth_middleware`.
"""

from __future__ import annotations

import asyncio
import json
from typing import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from edgestore.clock import Clock, seconds_to_ts
from edgestore.cluster.rpc import BODY_HEADER, TIME_HEADER, body_digest, verify_signature
from edgestore.errors import CorruptBlock, NoSuchBlock, StoreError
from edgestore.store.blockid import BLOCK_ID, is_pieced
from edgestore.store.blocks import BlockTooLarge
from edgestore.store.device import LocalDevice
from edgestore.store.listing import FIELD_PATH
from edgestore.store.meta import BlockRef
from edgestore.store.records import Record
from edgestore.streams import BodyTooLarge, read_limited

__all__ = ["internal_routes", "internal_auth_middleware", "internal_errors_middleware", "INTERNAL_PREFIX"]

INTERNAL_PREFIX = "/_internal/"
MAX_RECORD_BODY = 64 * 1024 * 1024
MAX_BLOCK_BODY = 64 * 1024 * 1024
MAX_LIST_ROWS = 10000

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# A bucket's (objects, bytes, changed_ts) on one replica, None if it has no rows there.
Counted = tuple[int, int, int] | None


def page_with_counters(page: bytes, counted: Counted) -> bytes:
    """The answer to a listing page asked with `counters=BUCKET`: the page's JSON text as
    SQLite wrote it (which holds no raw newline), a newline, then the counters' JSON."""
    return page + b"\n" + json.dumps(list(counted) if counted is not None else None).encode()


def split_page_with_counters(payload: bytes) -> tuple[bytes, Counted] | None:
    """page_with_counters' parts; None for an answer without counters (a peer older than
    the parameter ignores it). ValueError if the counters are malformed."""
    page, newline, tail = payload.rpartition(b"\n")
    if not newline:
        return None
    counted = json.loads(tail)
    if counted is None:
        return page, None
    if not (isinstance(counted, list) and len(counted) == 3 and all(type(n) is int for n in counted)):
        raise ValueError("malformed counters")
    return page, (counted[0], counted[1], counted[2])


def internal_auth_middleware(secret: bytes, clock: Clock) -> Middleware:
    """Refuses every /_internal/ request that is not signed with the cluster secret. A signed
    request's time moves this node's clock past the sender's: a node whose wall clock lags
    (a Pi that booted without network time) still orders its writes after its peers'."""
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(INTERNAL_PREFIX):
            reason = verify_signature(secret, request.method, request.raw_path, request.headers)
            if reason is not None:
                return web.Response(status=403, text=reason + "\n")
            clock.observe(seconds_to_ts(float(request.headers[TIME_HEADER])))
        return await handler(request)
    return middleware


@web.middleware
async def internal_errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A device that fails a peer's request (full, unreadable) answers 507, as Swift's object
    servers do: the caller counts this replica as failed and moves on to a handoff, and
    the failure is one log line rather than a traceback per request."""
    try:
        return await handler(request)
    except StoreError as exc:
        if not request.path.startswith(INTERNAL_PREFIX):
            raise
        return web.Response(status=507, text=f"{exc}\n")


async def _read_signed_body(request: web.Request, limit: int) -> bytes:
    """The body, checked against the digest the signature covers."""
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    try:
        body = await read_limited(request.content, limit)
    except BodyTooLarge:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=limit + 1) from None
    if body_digest(body) != request.headers[BODY_HEADER]:
        raise web.HTTPBadRequest(text="body does not match its signed digest\n")
    return body


def internal_routes(devices: dict[str, LocalDevice]) -> list[web.RouteDef]:
    def device_of(request: web.Request) -> LocalDevice:
        device = devices.get(request.match_info["device"])
        if device is None:
            raise web.HTTPNotFound(text="no such device on this node\n")
        return device

    def int_path(request: web.Request, name: str) -> int:
        try:
            return int(request.match_info[name])
        except ValueError:
            raise web.HTTPBadRequest(text=f"bad {name}\n") from None

    def int_param(request: web.Request, name: str) -> int:
        try:
            return int(request.query[name])
        except (KeyError, ValueError):
            raise web.HTTPBadRequest(text=f"missing or bad {name}\n") from None

    async def put_records(request: web.Request) -> web.Response:
        device = device_of(request)
        part = int_param(request, "part")
        body = await _read_signed_body(request, MAX_RECORD_BODY)
        try:
            records = [Record.from_wire(w) for w in json.loads(body)]
        except (ValueError, KeyError, TypeError) as exc:
            raise web.HTTPBadRequest(text=f"malformed records: {exc}\n") from exc
        if request.query.get("prior") != "1":
            return web.json_response({"newer": await device.meta.merge((r, part) for r in records)})
        # Asked for (a Swift DELETE): the version each record replaced or met, [ts, node, live].
        prior: dict[str, tuple[int, str, bool]] = {}
        newer = await device.meta.merge(((r, part) for r in records), prior)
        return web.json_response({"newer": newer, "prior": prior})

    async def get_record(request: web.Request) -> web.Response:
        device = device_of(request)
        record = await device.meta.get(request.query.get("kind", ""), request.query.get("name", ""))
        if record is None:
            return web.Response(status=404)
        return web.json_response(record.to_wire())

    async def list_records(request: web.Request) -> web.Response:
        device = device_of(request)
        limit = min(int_param(request, "limit"), 10000)
        records = await device.meta.list(request.query.get("kind", ""), request.query.get("prefix", ""),
                                         request.query.get("after"), limit)
        return web.json_response([r.to_wire() for r in records])

    async def list_rows(request: web.Request) -> web.Response:
        """A lean listing page (store/listing.py): a few fields of each record, and with a
        delimiter, common prefixes rolled up."""
        device = device_of(request)
        q = request.query
        limit = min(int_param(request, "limit"), MAX_LIST_ROWS)
        fields = [f for f in q.get("fields", "").split(",") if f]
        if not all(FIELD_PATH.match(f) for f in fields):
            raise web.HTTPBadRequest(text="bad fields\n")
        try:
            now = float(q.get("now", "0"))
        except ValueError:
            raise web.HTTPBadRequest(text="bad now\n") from None
        page = device.meta.list_rows_json(q.get("kind", ""), q.get("prefix", ""), q.get("after"), limit,
                                          q.get("delimiter", ""), fields, now)
        if "counters" not in q:
            return web.Response(body=await page, content_type="application/json")
        # A Swift container GET shows the bucket's counters: asked with the page, in one request.
        text, counted = await asyncio.gather(page, device.meta.bucket_counters(q["counters"], now))
        return web.Response(body=page_with_counters(text, counted), content_type="application/json")

    async def bucket_counters(request: web.Request) -> web.Response:
        device = device_of(request)
        try:
            now = float(request.query.get("now", "0"))
        except ValueError:
            raise web.HTTPBadRequest(text="bad now\n") from None
        counters = await device.meta.bucket_counters(request.query.get("bucket", ""), now)
        return web.json_response(list(counters) if counters is not None else None)

    async def put_block(request: web.Request) -> web.Response:
        device = device_of(request)
        block = request.match_info["block"]
        if not BLOCK_ID.match(block) or request.headers[BODY_HEADER] != block:
            raise web.HTTPBadRequest(text="bad block id\n")
        if request.content_length is not None and request.content_length > MAX_BLOCK_BODY:
            raise web.HTTPRequestEntityTooLarge(max_size=MAX_BLOCK_BODY, actual_size=request.content_length)
        ref = BlockRef(block, request.query.get("ref", ""), int_param(request, "part"), int_param(request, "ts"))
        # Streamed to disk as it arrives; the signed digest is the block id, whose
        # checksum the store checks on the bytes it wrote before it keeps them.
        try:
            await device.receive_block(block, request.content.iter_any(), ref, MAX_BLOCK_BODY)
        except CorruptBlock:
            raise web.HTTPBadRequest(text="body does not match its signed digest\n") from None
        except BlockTooLarge:
            raise web.HTTPRequestEntityTooLarge(max_size=MAX_BLOCK_BODY, actual_size=MAX_BLOCK_BODY + 1) from None
        return web.Response(status=201)

    async def check_record(request: web.Request) -> web.Response:
        device = device_of(request)
        record, intact = await device.meta.check(request.query.get("kind", ""), request.query.get("name", ""))
        if record is None:
            return web.json_response({"present": False, "intact": False})
        return web.json_response({"present": True, "intact": intact, "ts": record.ts, "writer": record.node,
                                  "deleted": record.deleted})

    async def check_block(request: web.Request) -> web.Response:
        device = device_of(request)
        block = request.match_info["block"]
        if not BLOCK_ID.match(block):
            raise web.HTTPBadRequest(text="bad block id\n")
        present, intact = await device.blocks.check(block)
        return web.json_response({"present": present, "intact": intact})

    async def block_refs(request: web.Request) -> web.Response:
        device = device_of(request)
        block = request.match_info["block"]
        if not BLOCK_ID.match(block):
            raise web.HTTPBadRequest(text="bad block id\n")
        return web.json_response([list(r) for r in await device.meta.block_refs(block)])

    async def collect_block(request: web.Request) -> web.Response:
        """Garbage collection found every listed reference dead: delete the block unless
        this device knows another."""
        device = device_of(request)
        block = request.match_info["block"]
        if not BLOCK_ID.match(block):
            raise web.HTTPBadRequest(text="bad block id\n")
        try:
            dead = {str(r) for r in json.loads(await _read_signed_body(request, MAX_RECORD_BODY))}
        except (ValueError, TypeError) as exc:
            raise web.HTTPBadRequest(text=f"malformed refs: {exc}\n") from exc
        return web.json_response({"collected": await device.collect_block(block, dead)})

    async def digests(request: web.Request) -> web.Response:
        device = device_of(request)
        return web.json_response({"parts": {str(p): list(d) for p, d in (await device.meta.digests()).items()}})

    async def partition_index(request: web.Request) -> web.Response:
        device = device_of(request)
        index, present = await device.partition_state(int_path(request, "part"))
        return web.json_response({"index": index.to_wire(), "present": sorted(present)})

    async def put_refs(request: web.Request) -> web.Response:
        """References pushed by anti-entropy (after the blocks it could send): a block whose
        file is not here is marked lost, so the next pass sends it."""
        device = device_of(request)
        part = int_path(request, "part")
        body = await _read_signed_body(request, MAX_RECORD_BODY)
        try:
            refs = [BlockRef(str(b), str(r), part, int(t)) for b, r, t in json.loads(body)]
        except (ValueError, TypeError) as exc:
            raise web.HTTPBadRequest(text=f"malformed refs: {exc}\n") from exc
        if not all(BLOCK_ID.match(r.block) for r in refs):
            raise web.HTTPBadRequest(text="bad block id\n")
        missing = await asyncio.to_thread(lambda: {r.block for r in refs
                                                   if not device.blocks.path_of(r.block).exists()})
        await device.meta.add_block_refs(refs, missing)
        return web.json_response({"missing": len(missing)})

    async def get_block(request: web.Request) -> web.Response:
        """A block's bytes; with `first` and `last`, a pieced block's piece digests and the
        pieces that cover those bytes (both checked here first, so rot is quarantined where
        it is; the coordinator checks them again after the network)."""
        device = device_of(request)
        block = request.match_info["block"]
        if not BLOCK_ID.match(block):
            raise web.HTTPBadRequest(text="bad block id\n")
        ranged = "first" in request.query or "last" in request.query
        if ranged and not is_pieced(block):
            raise web.HTTPBadRequest(text="only a pieced block is read by range\n")
        try:
            if ranged:
                first, last = int_param(request, "first"), int_param(request, "last")
                if not 0 <= first <= last:
                    raise web.HTTPBadRequest(text="bad range\n")
                read = await device.blocks.read_pieces(block, first, last)
                return web.Response(body=read.digests + read.data, content_type="application/octet-stream")
            data = await device.blocks.get(block)
        except (NoSuchBlock, CorruptBlock):
            return web.Response(status=404)
        except StoreError as exc:
            return web.Response(status=507, text=f"{exc}\n")
        return web.Response(body=data, content_type="application/octet-stream")

    p = INTERNAL_PREFIX + "{device}"
    return [
        web.post(p + "/records", put_records),
        web.get(p + "/record", get_record),
        web.get(p + "/list", list_records),
        web.get(p + "/rows", list_rows),
        web.get(p + "/counters", bucket_counters),
        web.put(p + "/block/{block}", put_block),
        web.get(p + "/block/{block}", get_block),
        web.get(p + "/check", check_record),
        web.get(p + "/block/{block}/check", check_block),
        web.get(p + "/block/{block}/refs", block_refs),
        web.post(p + "/block/{block}/collect", collect_block),
        web.get(p + "/digests", digests),
        web.get(p + "/part/{part}/index", partition_index),
        web.post(p + "/part/{part}/refs", put_refs),
    ]
