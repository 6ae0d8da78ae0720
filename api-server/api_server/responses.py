"""JSON responses, and every failure turned into the ``Status`` body clients parse.

Two middlewares wrap every request: ``internal_error_guard`` turns an unexpected exception into a
500 ``InternalError`` (logged once, with its traceback), and ``error_middleware`` renders any
``ApiError`` as a ``Status`` with its code. Handlers only raise.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from api_server.errors import ApiError, InternalError

__all__ = ["JSON", "Handler", "error_middleware", "internal_error_guard", "json_response"]

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

JSON = "application/json"


def json_response(
    body: dict[str, Any], status: int = 200, *, content_type: str = JSON, warnings: list[str] | None = None
) -> web.Response:
    response = web.Response(body=orjson.dumps(body), status=status, headers={"Content-Type": content_type})
    for warning in warnings or ():
        escaped = warning.replace("\\", "\\\\").replace('"', '\\"')
        response.headers.add("Warning", f'299 - "{escaped}"')
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        if exc.code >= 500:
            # the traceback, if any, was logged where the error was raised
            log.error("%s %s: %s", request.method, request.path_qs, exc.message)  # noqa: TRY400
        else:
            log.debug("%s %s: %d %s", request.method, request.path_qs, exc.code, exc.message)
        return json_response(exc.to_status(), exc.code)


@web.middleware
async def internal_error_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn an unexpected exception into a 500 Status (logged with its traceback)."""
    try:
        return await handler(request)
    except (ApiError, web.HTTPException, asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception as exc:
        log.exception("%s %s failed", request.method, request.path_qs)
        raise InternalError(f"internal error: {type(exc).__name__}: {exc}") from exc
