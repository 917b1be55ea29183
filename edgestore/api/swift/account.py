"""Account operations: GET (list containers), HEAD (counts and bytes), POST (metadata).

Account metadata (X-Account-Meta-*, among them the temp URL keys) is its own record
(model/accounts.py); POST merges into it, an empty value or X-Remove-Account-Meta-*
removing an item.

The counts add up each container's counters (kept by every replica's store, read from a
quorum; eventually consistent, as Swift's are): no container is listed.

Account quotas (Swift's account_quotas): X-Account-Meta-Quota-Bytes caps the bytes of the
account's objects; only an admin (Swift's reseller admin) may set or remove it, so an
account's own users cannot lift it. An object PUT that would pass it is 413.
"""

from __future__ import annotations

import dataclasses
from typing import Any, AsyncIterator

from aiohttp import web

from edgestore.api.swift.acl import format_account_acl, parse_account_acl
from edgestore.api.swift.container import ContainerStats, container_stats
from edgestore.api.swift.context import RESELLER_PREFIX, SwiftRequest, iso_time, x_timestamp
from edgestore.api.swift.errors import SwiftError
from edgestore.api.swift.listing import listing_format, listing_params, render_listing, select
from edgestore.api.swift.metadata import merge_meta, meta_headers, sent_meta
from edgestore.clock import ts_to_seconds
from edgestore.model.buckets import Bucket

__all__ = ["account_get", "account_head", "account_post", "enforce_account_quota"]

QUOTA_BYTES = "quota-bytes"  # X-Account-Meta-Quota-Bytes, as sent_meta names it
ACCOUNT_ACL_HEADER = "X-Account-Access-Control"


async def _container_stats(req: SwiftRequest) -> list[tuple[Bucket, ContainerStats]]:
    return [(b, await container_stats(req, b)) async for b in req.services.buckets.list_for_account(req.account)]


async def _stats(req: SwiftRequest) -> tuple[list[tuple[Bucket, ContainerStats]], dict[str, str]]:
    rows = await _container_stats(req)
    headers = {
        "X-Account-Container-Count": str(len(rows)),
        "X-Account-Object-Count": str(sum(s.count for _, s in rows)),
        "X-Account-Bytes-Used": str(sum(s.bytes_used for _, s in rows)),
        "X-Timestamp": x_timestamp(min((ts_to_seconds(b.created_ts) for b, _ in rows), default=0.0)),
        "Accept-Ranges": "bytes",
    }
    stored = await req.services.accounts.get(req.account)
    headers.update(meta_headers(stored.meta, "account"))
    if stored.access and req.owner:  # (only its owners see who else may use it)
        headers[ACCOUNT_ACL_HEADER] = format_account_acl(stored.access)
    return rows, headers


async def account_head(req: SwiftRequest) -> web.StreamResponse:
    _, headers = await _stats(req)
    return web.Response(status=204, headers=headers)


async def account_get(req: SwiftRequest) -> web.StreamResponse:
    params = listing_params(req.query, allow_path=False)
    fmt = listing_format(req.http, req.query)
    rows, headers = await _stats(req)

    async def names() -> AsyncIterator[tuple[str, tuple[Bucket, ContainerStats]]]:
        for row in rows:
            yield row[0].name, row

    entries = await select(names(), params)

    def as_dict(row: tuple[Bucket, ContainerStats]) -> dict[str, Any]:
        bucket, stats = row
        return {"name": bucket.name, "count": stats.count, "bytes": stats.bytes_used,
                "last_modified": iso_time(ts_to_seconds(bucket.created_ts))}

    return render_listing(fmt, "account", RESELLER_PREFIX + req.account, entries, as_dict, headers,
                          req.http.method)


async def account_post(req: SwiftRequest) -> web.StreamResponse:
    sent = sent_meta(req.http.headers, "account", removals=True)
    if QUOTA_BYTES in sent:
        if req.user is None or not req.user.admin:
            raise SwiftError(403)
        if sent[QUOTA_BYTES] and not (sent[QUOTA_BYTES].isascii() and sent[QUOTA_BYTES].isdigit()):
            raise SwiftError(400, "Invalid bytes quota.")
    access = None
    if ACCOUNT_ACL_HEADER in req.http.headers:
        try:
            access = parse_account_acl(req.http.headers[ACCOUNT_ACL_HEADER])
        except ValueError as exc:
            raise SwiftError(400, str(exc)) from None
    if sent or access is not None:
        stored = await req.services.accounts.get(req.account, use_cache=False)
        await req.services.accounts.save(dataclasses.replace(
            stored, meta=merge_meta(stored.meta, sent, "x-account-meta-"),
            access=stored.access if access is None else access))
    return web.Response(status=204)


async def enforce_account_quota(req: SwiftRequest, size: int) -> None:
    """Before an object PUT of ``size`` bytes: 413 if the account's quota would be passed
    (its containers' counters are read only when a quota is set)."""
    quota = (await req.services.accounts.get(req.account)).meta.get(QUOTA_BYTES, "")
    if not (quota.isascii() and quota.isdigit()):
        return
    if sum(stats.bytes_used for _, stats in await _container_stats(req)) + size > int(quota):
        raise SwiftError(413, "Upload exceeds quota.")
