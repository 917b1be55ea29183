"""The Docker volume plugin protocol over a unix socket: dockerd POSTs JSON to
``/Plugin.Activate`` and ``/VolumeDriver.*`` and reads JSON back; a refusal is a 4xx/5xx
answer whose body is ``{"Err": "reason"}``, which dockerd shows to the user."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from .volume_driver import VolumeDriver
from .volumes import VolumeError

__all__ = ["make_app", "serve", "CONTENT_TYPE"]

log = logging.getLogger("edgestore.volumes")

CONTENT_TYPE = "application/vnd.docker.plugins.v1.2+json"

Handler = Callable[[VolumeDriver, dict[str, Any]], Awaitable[dict[str, Any]]]


def _answer(body: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(status=status, body=json.dumps(body).encode(), content_type=CONTENT_TYPE)


async def _activate(driver: VolumeDriver, req: dict[str, Any]) -> dict[str, Any]:
    return {"Implements": ["VolumeDriver"]}


async def _create(driver: VolumeDriver, req: dict[str, Any]) -> dict[str, Any]:
    await driver.create(req.get("Name"), req.get("Opts"))
    return {"Err": ""}


async def _remove(driver: VolumeDriver, req: dict[str, Any]) -> dict[str, Any]:
    await driver.remove(req.get("Name"))
    return {"Err": ""}


async def _mount(driver: VolumeDriver, req: dict[str, Any]) -> dict[str, Any]:
    return {"Mountpoint": await driver.mount(req.get("Name"), req.get("ID")), "Err": ""}


async def _unmount(driver: VolumeDriver, req: dict[str, Any]) -> dict[str, Any]:
    await driver.unmount(req.get("Name"), req.get("ID"))
    return {"Err": ""}


async def _path(driver: VolumeDriver, req: dict[str, Any]) -> dict[str, Any]:
    return {"Mountpoint": driver.path(req.get("Name")), "Err": ""}


async def _get(driver: VolumeDriver, req: dict[str, Any]) -> dict[str, Any]:
    return {"Volume": driver.get(req.get("Name")), "Err": ""}


async def _list(driver: VolumeDriver, req: dict[str, Any]) -> dict[str, Any]:
    return {"Volumes": driver.list(), "Err": ""}


async def _capabilities(driver: VolumeDriver, req: dict[str, Any]) -> dict[str, Any]:
    return {"Capabilities": {"Scope": "local"}}  # each host mounts for itself


METHODS: dict[str, Handler] = {
    "Plugin.Activate": _activate,
    "VolumeDriver.Create": _create,
    "VolumeDriver.Remove": _remove,
    "VolumeDriver.Mount": _mount,
    "VolumeDriver.Unmount": _unmount,
    "VolumeDriver.Path": _path,
    "VolumeDriver.Get": _get,
    "VolumeDriver.List": _list,
    "VolumeDriver.Capabilities": _capabilities,
}


async def _request_body(request: web.Request) -> dict[str, Any]:
    """The JSON object of a request; dockerd sends none (or null) where there is nothing to say."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise VolumeError(400, f"the request body is not JSON: {exc}") from None
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise VolumeError(400, "the request body must be a JSON object")
    return body


def make_app(driver: VolumeDriver) -> web.Application:
    async def dispatch(request: web.Request) -> web.Response:
        method = request.match_info["method"]
        handler = METHODS.get(method)
        try:
            if handler is None:
                raise VolumeError(404, f"unknown method {method!r}")
            if request.method != "POST":
                raise VolumeError(405, f"{method} takes POST")
            return _answer(await handler(driver, await _request_body(request)))
        except VolumeError as exc:
            log.info("%s: %s", method, exc)
            return _answer({"Err": str(exc)}, exc.status)
        except Exception as exc:  # a bug of ours: say so in one line, keep serving
            log.exception("%s failed", method)
            return _answer({"Err": f"internal error: {exc}"}, 500)

    app = web.Application()
    app.router.add_route("*", "/{method}", dispatch)
    return app


def _claim_socket(path: Path) -> None:
    """Remove a socket left by a plugin that died; refuse if one is still answering there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise VolumeError(500, f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink()
        return
    finally:
        probe.close()
    raise VolumeError(500, f"another plugin is serving on {path}")


async def serve(driver: VolumeDriver, socket_path: Path) -> None:
    """Serve until SIGTERM or SIGINT. Mounts stay: containers using them keep running, and the
    next plugin finds them in its state."""
    _claim_socket(socket_path)
    driver.start()
    runner = web.AppRunner(make_app(driver), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.UnixSite(runner, str(socket_path))
    await site.start()
    os.chmod(socket_path, 0o660)
    log.info("serving the volume plugin on %s (%d volumes, state in %s)", socket_path,
             len(driver.store.volumes), driver.store.path)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        socket_path.unlink(missing_ok=True)
        log.info("volume plugin stopped")
