"""The admin API: health, and the operations `edgestore` commands perform on a cluster.

Mounted under /_admin/ (no bucket name starts with '_'). Health is open; everything
else needs either the cluster signature (nodes, and `edgestore up` on the same machine)
or SigV4 from an admin user (`edgestore user create --endpoint URL --access-key ...`).
"""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

from aiohttp import web

from edgestore.cluster.ringstate import RingState
from edgestore.cluster.rpc import BODY_HEADER, body_digest, verify_signature
from edgestore.jobs.runner import JobRunner
from edgestore.model.users import InvalidUser, Users
from edgestore.streams import BodyTooLarge, read_limited

__all__ = ["admin_routes", "AdminGuard", "ADMIN_PREFIX", "job_request", "json_object"]

ADMIN_PREFIX = "/_admin/"

AdminCheck = Callable[[web.Request, bytes], Awaitable[bool]]
MAX_ADMIN_BODY = 64 * 1024


def job_request(jobs: JobRunner, name: str, body: bytes) -> tuple[str, dict[str, Any]]:
    """A job's name (404 if there is no such job) and its options from a JSON body (400)."""
    if name not in jobs.jobs:
        raise web.HTTPNotFound(text=f"no job {name!r}; jobs: {', '.join(sorted(jobs.jobs))}\n")
    return name, json_object(body, "bad options")


def json_object(body: bytes, what: str = "bad request") -> dict[str, Any]:
    """A JSON object body (empty: {}); 400 for anything else."""
    try:
        value = json.loads(body) if body.strip() else {}
    except ValueError as exc:
        raise web.HTTPBadRequest(text=f"{what}: {exc}\n") from exc
    if not isinstance(value, dict):
        raise web.HTTPBadRequest(text=f"{what}: expected a JSON object\n")
    return value


class AdminGuard:
    """Admits requests from the cluster itself (signed with its secret) or from an admin
    user (SigV4), and hands their body over; everyone else gets 403."""

    def __init__(self, secret: bytes, admin_by_sigv4: AdminCheck) -> None:
        self._secret = secret
        self._admin_by_sigv4 = admin_by_sigv4

    async def body(self, request: web.Request) -> bytes:
        try:
            body = await read_limited(request.content, MAX_ADMIN_BODY)
        except BodyTooLarge:
            raise web.HTTPRequestEntityTooLarge(max_size=MAX_ADMIN_BODY, actual_size=MAX_ADMIN_BODY + 1) from None
        if verify_signature(self._secret, request.method, request.raw_path, request.headers) is None:
            if request.headers.get(BODY_HEADER) == body_digest(body):
                return body
        elif await self._admin_by_sigv4(request, body):
            return body
        raise web.HTTPForbidden(text="admin credentials required\n")


def admin_routes(node_id: str, ring_state: RingState, users: Users, guard: AdminGuard,
                 devices: list[str], jobs: JobRunner) -> list[web.RouteDef]:
    admin_body = guard.body

    async def health(request: web.Request) -> web.Response:
        ring = ring_state.ring
        return web.json_response({"status": "ok", "node": node_id, "ring_version": ring.version,
                                  "devices": devices})

    async def create_user(request: web.Request) -> web.Response:
        body = await admin_body(request)
        try:
            spec = json.loads(body)
            user = await users.create(
                str(spec["account"]), str(spec["user"]), admin=bool(spec.get("admin", False)),
                access_key=spec.get("access_key"), secret_key=spec.get("secret_key"),
                swift_key=spec.get("swift_key"))
        except (ValueError, KeyError, TypeError) as exc:
            raise web.HTTPBadRequest(text=f"expected JSON with account and user: {exc}\n") from exc
        except InvalidUser as exc:
            raise web.HTTPBadRequest(text=f"{exc}\n") from exc
        return web.json_response({"account": user.account, "user": user.user,
                                  "access_key": user.access_key, "secret_key": user.secret_key,
                                  "swift_user": user.swift_name, "swift_key": user.effective_swift_key,
                                  "admin": user.admin}, status=201)

    async def list_jobs(request: web.Request) -> web.Response:
        await admin_body(request)
        return web.json_response({name: vars(state) for name, state in jobs.state.items()})

    async def run_job(request: web.Request) -> web.Response:
        """Run one pass of a job now, with job-specific options from a JSON body."""
        name, options = job_request(jobs, request.match_info["name"], await admin_body(request))
        try:
            result = await jobs.run_once(name, **options)
        except (ValueError, TypeError) as exc:
            raise web.HTTPBadRequest(text=f"bad options: {exc}\n") from exc
        return web.json_response(result)

    return [
        web.get(ADMIN_PREFIX + "health", health),
        web.post(ADMIN_PREFIX + "users", create_user),
        web.get(ADMIN_PREFIX + "jobs", list_jobs),
        web.post(ADMIN_PREFIX + "jobs/{name}/run", run_job),
    ]
