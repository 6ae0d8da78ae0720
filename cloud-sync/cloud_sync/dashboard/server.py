"""The dashboard's HTTP side (aiohttp): the page, its stream, its one write, and who may use them.

* ``GET /``: the page (``static/index.html``); ``/?token=TOKEN`` logs in and redirects to ``/``;
* ``GET /static/{file}``: the page's script, style sheet and icon (no data in them: served to anyone);
* ``GET /api/state``: everything the page shows, as JSON (``Board.snapshot``);
* ``GET /api/stream``: Server-Sent Events, a snapshot, then the changes as they happen (``hub``);
* ``POST /api/devices/{namespace}/{name}/properties/{property}/desired`` with ``{"value": "22"}``:
  set a desired value (``writes``).

Access: every route but the static files needs the dashboard's token, either once in the page's
address (``/?token=…``: it becomes a cookie for this port, ``HttpOnly`` and ``SameSite=Strict``, and
the address loses it) or as ``Authorization: Bearer TOKEN`` (scripts). So reading and writing need
the same thing, the token the page was opened with; a page of another site cannot send the cookie
(``SameSite=Strict``) nor post JSON without it, and the page allows no script but its own
(``Content-Security-Policy``). A write that fails answers ``{"error": MESSAGE, "reason": NAME}``
with a 4xx or 5xx status, and changes nothing.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable
from importlib import resources

from aiohttp import web

from cloud_sync.dashboard.board import Board
from cloud_sync.dashboard.hub import Hub
from cloud_sync.dashboard.writes import DesiredWriter
from cloud_sync.errors import ApiError
from twin.errors import EdgetwinError, TemporaryError

__all__ = ["make_app"]

log = logging.getLogger(__name__)

_MAX_BODY = 16 * 1024
_STATIC = {
    "dashboard.js": "text/javascript",
    "dashboard.css": "text/css",
    "favicon.svg": "image/svg+xml",
}
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_LOGIN = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>edgetwin dashboard</title></head><body><h1>edgetwin dashboard</h1>
<p>This page needs the dashboard's token. Open the address
<code>edgetwin cloud</code> printed (it ends in <code>/?token=…</code>); the token is also in the file
<code>dashboard-token</code> of cloud-sync's data directory.</p></body></html>
"""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _static(name: str) -> bytes:
    return (resources.files("cloud_sync.dashboard") / "static" / name).read_bytes()


def make_app(
    board: Board, hub: Hub, writer: DesiredWriter, *, token: str, port: int, keepalive: float
) -> web.Application:
    cookie = f"edgetwin_dashboard_{port}"  # cookies ignore ports: one name per dashboard on a host
    page = _static("index.html")
    files = {name: _static(name) for name in _STATIC}

    def authorized(request: web.Request) -> bool:
        offered = request.cookies.get(cookie, "")
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            offered = header.removeprefix("Bearer ").strip()
        return bool(offered) and hmac.compare_digest(offered.encode(), token.encode())

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/static/") or authorized(request):
            response = await handler(request)
        elif request.path == "/" and "token" in request.query:
            offered = request.query["token"]
            if not hmac.compare_digest(offered.encode(), token.encode()):
                response = web.Response(status=401, text=_LOGIN, content_type="text/html")
            else:
                response = web.Response(status=303, headers={"Location": "/"})
                response.set_cookie(cookie, token, httponly=True, samesite="Strict", path="/")
        elif request.path.startswith("/api/"):
            response = _error(401, "Unauthorized", "the dashboard's token is missing or wrong")
        else:
            response = web.Response(status=401, text=_LOGIN, content_type="text/html")
        if not response.prepared:  # a stream sent its headers already, these among them
            response.headers.update(_HEADERS)
        return response

    async def index(request: web.Request) -> web.Response:
        return web.Response(body=page, content_type="text/html", charset="utf-8")

    async def static(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in files:
            raise web.HTTPNotFound()
        charset = None if _STATIC[name].startswith("image/") else "utf-8"
        return web.Response(body=files[name], content_type=_STATIC[name], charset=charset)

    async def state(request: web.Request) -> web.Response:
        return web.json_response(board.snapshot())

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",
            }
        )
        response.headers.update(_HEADERS)
        await response.prepare(request)
        subscriber, start = hub.subscribe()
        try:
            await response.write(start)
            while True:
                try:
                    async with asyncio.timeout(keepalive):
                        data = await subscriber.queue.get()
                except TimeoutError:
                    data = b": keep-alive\n\n"  # a comment: proxies and the browser see the stream alive
                if data is None:
                    break
                await response.write(data)
        except ConnectionError:
            pass  # the page went away
        finally:
            hub.unsubscribe(subscriber)
        return response

    async def set_desired(request: web.Request) -> web.Response:
        info = request.match_info
        if request.content_type != "application/json":
            return _error(415, "UnsupportedMediaType", 'send the value as JSON: {"value": "22"}')
        try:
            body = await request.json()
        except web.HTTPRequestEntityTooLarge:
            return _error(413, "InvalidPayload", f"the body is larger than {_MAX_BODY // 1024} KiB")
        except ValueError:
            return _error(400, "InvalidPayload", "the body is not JSON")
        value = body.get("value") if isinstance(body, dict) else None
        if not isinstance(value, str):
            return _error(400, "InvalidPayload", 'send {"value": "..."} with the value as a string')
        try:
            await writer.set(info["namespace"], info["name"], info["property"], value)
        except ApiError as exc:
            code = 503 if isinstance(exc, TemporaryError) else 502
            return _error(code, type(exc).__name__, f"the Kubernetes API did not take it: {exc}")
        except EdgetwinError as exc:
            return _error(exc.code, type(exc).__name__, str(exc))
        return web.json_response(
            {"device": f"{info['namespace']}/{info['name']}", "property": info["property"], "value": value}
        )

    app = web.Application(middlewares=[guard], client_max_size=_MAX_BODY)
    app.router.add_get("/", index)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/api/state", state)
    app.router.add_get("/api/stream", stream)
    app.router.add_post("/api/devices/{namespace}/{name}/properties/{property}/desired", set_desired)
    return app


def _error(status: int, reason: str, message: str) -> web.Response:
    return web.json_response({"error": message, "reason": reason}, status=status)
