"""HTTP: routing Kubernetes API paths to operations, content negotiation, and watch streams.

One catch-all route parses ``/api/v1/...`` and ``/apis/G/V/...`` paths into resource type,
namespace, name and subresource, then dispatches on the method. Responses are JSON; a client that
asks for ``as=Table`` gets a ``meta.k8s.io/v1 Table`` (``kubectl get`` columns), also on watches.
Every ``ApiError`` becomes a ``Status`` body with its code.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
import yaml
from aiohttp import web

from api_server import discovery, openapi
from api_server.errors import ApiError, BadRequest, Gone, InternalError, MethodNotAllowed, NotFound
from api_server.operations import Operations, WriteOptions
from api_server.protobuf import PROTOBUF, decode_object
from api_server.resources import ResourceType
from api_server.selectors import Selector, parse_field_selector, parse_label_selector
from api_server.storage import Change
from api_server.tables import table
from api_server.watch import Watcher, WatchHub

__all__ = ["ApiHandlers", "error_middleware", "internal_error_guard"]

log = logging.getLogger(__name__)

Object = dict[str, Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_JSON = "application/json"


def json_response(
    body: Object, status: int = 200, *, content_type: str = _JSON, warnings: list[str] | None = None
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


@dataclass(frozen=True)
class Target:
    """What a resource URL names."""

    rtype: ResourceType
    namespace: str | None  # None: all namespaces (or cluster-scoped)
    name: str
    subresource: str
    watch: bool


def _wants_table(request: web.Request) -> bool:
    return "as=Table" in request.headers.get("Accept", "")


def _wants_aggregated(request: web.Request) -> bool:
    return "as=APIGroupDiscoveryList" in request.headers.get("Accept", "")


def _bool_param(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("true", "1")


class ApiHandlers:
    """The request handlers of one server instance."""

    def __init__(
        self, ops: Operations, hub: WatchHub, *, server_address: str, bookmark_interval: float = 30.0
    ) -> None:
        self.ops = ops
        self.hub = hub
        self.server_address = server_address
        self.bookmark_interval = bookmark_interval
        ops.store.subscribe(hub.publish)

    # -- routing -----------------------------------------------------------------------------

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        parts = [p for p in path.split("/") if p]
        if path in ("/healthz", "/livez", "/readyz"):
            return web.Response(text="ok")
        if path == "/version":
            return json_response(discovery.version_info())
        if path == "/":
            return json_response(
                {"paths": ["/api", "/api/v1", "/apis", "/healthz", "/openapi/v3", "/version"]}
            )
        if parts[0] == "openapi":
            return self._openapi(request, parts)
        if parts[0] == "api":
            if len(parts) == 1:
                if _wants_aggregated(request):
                    return json_response(
                        discovery.aggregated_discovery(self.ops.registry, legacy=True),
                        content_type=discovery.AGGREGATED_CONTENT_TYPE,
                    )
                return json_response(discovery.api_versions(self.server_address))
            group, version, rest = "", parts[1], parts[2:]
        elif parts[0] == "apis":
            if len(parts) == 1:
                if _wants_aggregated(request):
                    return json_response(
                        discovery.aggregated_discovery(self.ops.registry, legacy=False),
                        content_type=discovery.AGGREGATED_CONTENT_TYPE,
                    )
                return json_response(discovery.api_group_list(self.ops.registry))
            if len(parts) == 2:
                versions = self.ops.registry.group_versions().get(parts[1])
                if not versions:
                    raise NotFound("the server could not find the requested resource")
                return json_response(discovery.api_group(parts[1], versions))
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise NotFound("the server could not find the requested resource")
        if version not in self.ops.registry.group_versions().get(group, []):
            raise NotFound("the server could not find the requested resource")
        if not rest:
            return json_response(discovery.api_resource_list(self.ops.registry, group, version))
        target = self._target(group, version, rest)
        return await self._resource(request, target)

    def _openapi(self, request: web.Request, parts: list[str]) -> web.Response:
        if parts == ["openapi", "v2"]:
            return openapi.empty_v2(request.headers.get("Accept", ""))
        if parts[:2] != ["openapi", "v3"]:
            raise NotFound("the server could not find the requested resource")
        if len(parts) == 2:
            return json_response(openapi.index(self.ops.registry))
        rest = parts[2:]
        if rest[0] == "api" and len(rest) == 2:
            group, version = "", rest[1]
        elif rest[0] == "apis" and len(rest) == 3:
            group, version = rest[1], rest[2]
        else:
            raise NotFound("the server could not find the requested resource")
        if version not in self.ops.registry.group_versions().get(group, []):
            raise NotFound("the server could not find the requested resource")
        return json_response(openapi.document(self.ops.registry, group, version))

    def _target(self, group: str, version: str, rest: list[str]) -> Target:
        watch = False
        if rest[0] == "watch":
            watch, rest = True, rest[1:]
        namespace: str | None = None
        if (
            rest
            and rest[0] == "namespaces"
            and len(rest) >= 3
            and not (len(rest) == 3 and rest[2] in ("status", "finalize"))
        ):
            namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            raise NotFound("the server could not find the requested resource")
        rtype = self.ops.registry.find(group, version, rest[0])
        name = rest[1] if len(rest) > 1 else ""
        sub = rest[2] if len(rest) > 2 else ""
        if namespace is not None and not rtype.namespaced:
            raise NotFound("the server could not find the requested resource")
        if sub and sub not in rtype.all_subresources:
            raise NotFound(f"the server could not find the requested resource ({rtype.plural}/{sub})")
        return Target(rtype, namespace, name, sub, watch)

    # -- resources ---------------------------------------------------------------------------

    async def _resource(self, request: web.Request, target: Target) -> web.StreamResponse:
        method = request.method
        rtype = target.rtype
        ns = target.namespace if rtype.namespaced else ""
        if rtype.namespaced and not target.name and target.namespace is None and method not in ("GET",):
            raise MethodNotAllowed(
                f"the server does not allow this method on the requested resource ({method})"
            )
        if rtype.namespaced and target.name and target.namespace is None:
            raise NotFound("the server could not find the requested resource")
        if method == "GET":
            if target.watch or _bool_param(request, "watch"):
                return await self._watch(request, target)
            if target.name:
                obj = self.ops.get(rtype, ns or "", target.name)
                return self._object_response(request, rtype, obj)
            return self._list(request, target)
        options = WriteOptions(
            dry_run=request.query.get("dryRun") == "All",
            field_validation=request.query.get("fieldValidation", "Warn"),
            field_manager=request.query.get("fieldManager", ""),
            force=_bool_param(request, "force"),
        )
        if method == "POST" and not target.name:
            created = self.ops.create(rtype, ns or "", await self._body(request), options)
            return json_response(created, 201, warnings=options.warnings)
        if method == "PUT" and target.name:
            updated = self.ops.update(
                rtype,
                ns or "",
                target.name,
                await self._body(request),
                subresource=target.subresource,
                options=options,
            )
            return json_response(updated, warnings=options.warnings)
        if method == "PATCH" and target.name:
            content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
            patched, created_now = self.ops.patch(
                rtype,
                ns or "",
                target.name,
                content_type,
                await request.read(),
                subresource=target.subresource,
                options=options,
            )
            return json_response(patched, 201 if created_now else 200, warnings=options.warnings)
        if method == "DELETE" and target.name and not target.subresource:
            raw = await request.read()
            delete_options = self._parse(raw) if raw.strip() else {}
            deleted = self.ops.delete(
                rtype, ns or "", target.name, delete_options, dry_run=request.query.get("dryRun") == "All"
            )
            return json_response(deleted)
        if method == "DELETE" and not target.name:
            labels, fields = self._selectors(request)
            removed = self.ops.delete_collection(rtype, target.namespace, labels=labels, fields=fields)
            return json_response(
                {
                    "kind": rtype.list_kind,
                    "apiVersion": rtype.api_version,
                    "metadata": {"resourceVersion": str(self.ops.store.rv)},
                    "items": removed,
                }
            )
        raise MethodNotAllowed(f"the server does not allow this method on the requested resource ({method})")

    @staticmethod
    def _parse(raw: bytes) -> Any:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            try:
                return yaml.safe_load(raw)
            except yaml.YAMLError as exc:
                raise BadRequest(f"the body is neither JSON nor YAML: {exc}") from exc

    async def _body(self, request: web.Request) -> Any:
        raw = await request.read()
        if request.headers.get("Content-Type", "").startswith(PROTOBUF):
            return decode_object(raw)
        return self._parse(raw)

    @staticmethod
    def _selectors(request: web.Request) -> tuple[Selector | None, Selector | None]:
        return (
            parse_label_selector(request.query.get("labelSelector")),
            parse_field_selector(request.query.get("fieldSelector")),
        )

    def _object_response(self, request: web.Request, rtype: ResourceType, obj: Object) -> web.Response:
        if _wants_table(request):
            return json_response(
                table(
                    rtype,
                    [obj],
                    include=request.query.get("includeObject", "Metadata"),
                    list_meta={"resourceVersion": obj["metadata"].get("resourceVersion", "")},
                )
            )
        return json_response(obj)

    def _list(self, request: web.Request, target: Target) -> web.Response:
        rtype = target.rtype
        labels, fields = self._selectors(request)
        try:
            limit = int(request.query.get("limit", "0") or 0)
        except ValueError as exc:
            raise BadRequest("limit must be an integer") from exc
        result = self.ops.list_objects(
            rtype,
            target.namespace if rtype.namespaced else None,
            labels=labels,
            fields=fields,
            limit=limit,
            continue_token=request.query.get("continue", ""),
        )
        meta: Object = {"resourceVersion": result.resource_version}
        if result.continue_token:
            meta["continue"] = result.continue_token
            meta["remainingItemCount"] = result.remaining
        if _wants_table(request):
            return json_response(
                table(
                    rtype,
                    result.items,
                    include=request.query.get("includeObject", "Metadata"),
                    list_meta=meta,
                )
            )
        return json_response(
            {
                "kind": rtype.list_kind,
                "apiVersion": rtype.api_version,
                "metadata": meta,
                "items": result.items,
            }
        )

    # -- watch -------------------------------------------------------------------------------

    async def _watch(self, request: web.Request, target: Target) -> web.StreamResponse:
        rtype = target.rtype
        labels, fields = self._selectors(request)
        if target.name:
            by_name = parse_field_selector(f"metadata.name={target.name}")
            fields = by_name if fields is None else (lambda o, a=fields, b=by_name: a(o) and b(o))
        namespace = target.namespace if rtype.namespaced else None
        watcher = Watcher(rtype.key, namespace, labels, fields)
        as_table = _wants_table(request)
        bookmarks = _bool_param(request, "allowWatchBookmarks") and not as_table
        send_initial = _bool_param(request, "sendInitialEvents")
        rv_param = request.query.get("resourceVersion", "")
        timeout_text = request.query.get("timeoutSeconds", "")
        try:
            deadline = time.monotonic() + float(timeout_text) if timeout_text else None
        except ValueError as exc:
            raise BadRequest("timeoutSeconds must be a number") from exc

        store = self.ops.store
        backlog: list[Change]
        error: Object | None = None
        if rv_param in ("", "0") or send_initial:
            backlog = [
                Change(store.rv, "ADDED", rtype.key, obj)
                for obj in store.items(rtype.key, namespace)
                if (labels is None or labels(obj)) and (fields is None or fields(obj))
            ]
        else:
            try:
                since = int(rv_param)
            except ValueError as exc:
                raise BadRequest(f"invalid resourceVersion {rv_param!r}") from exc
            try:
                backlog = [c for c in store.changes_since(since) if watcher.matches(c)]
            except Gone as exc:
                backlog, error = [], exc.to_status()
        self.hub.add(watcher)
        response = web.StreamResponse(headers={"Content-Type": _JSON, "Cache-Control": "no-cache"})
        response.enable_chunked_encoding()
        try:
            await response.prepare(request)
            if error is not None:
                await response.write(orjson.dumps({"type": "ERROR", "object": error}) + b"\n")
                return response
            chunk: list[bytes] = [self._event(rtype, c, as_table) for c in backlog]
            if send_initial and bookmarks:
                chunk.append(self._bookmark(rtype, store.rv, initial_end=True))
            if chunk:
                await response.write(b"".join(chunk))
            await self._stream(
                response, rtype, watcher, as_table=as_table, bookmarks=bookmarks, deadline=deadline
            )
        except (ConnectionResetError, asyncio.CancelledError):
            log.debug("watch of %s closed by the client", rtype.key)
            raise
        finally:
            self.hub.remove(watcher)
            watcher.closed = True
        return response

    async def _stream(
        self,
        response: web.StreamResponse,
        rtype: ResourceType,
        watcher: Watcher,
        *,
        as_table: bool,
        bookmarks: bool,
        deadline: float | None,
    ) -> None:
        while True:
            wait = self.bookmark_interval
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    return
            change: Change | None
            try:
                async with asyncio.timeout(wait):
                    change = await watcher.queue.get()
            except TimeoutError:
                if bookmarks:
                    await response.write(self._bookmark(rtype, self.ops.store.rv))
                continue
            if change is None:
                return
            batch = [self._event(rtype, change, as_table)]
            while not watcher.queue.empty() and len(batch) < 500:
                more = watcher.queue.get_nowait()
                if more is None:
                    await response.write(b"".join(batch))
                    return
                batch.append(self._event(rtype, more, as_table))
            await response.write(b"".join(batch))

    @staticmethod
    def _event(rtype: ResourceType, change: Change, as_table: bool) -> bytes:
        if as_table:
            body = orjson.dumps(table(rtype, [change.obj], list_meta={"resourceVersion": str(change.rv)}))
        elif change.obj.get("apiVersion") != rtype.api_version:
            body = orjson.dumps({**change.obj, "apiVersion": rtype.api_version})
        else:
            body = change.json()
        return b'{"type":"' + change.type.encode() + b'","object":' + body + b"}\n"

    @staticmethod
    def _bookmark(rtype: ResourceType, rv: int, *, initial_end: bool = False) -> bytes:
        meta: Object = {"resourceVersion": str(rv)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        obj = {"kind": rtype.kind, "apiVersion": rtype.api_version, "metadata": meta}
        return orjson.dumps({"type": "BOOKMARK", "object": obj}) + b"\n"


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
