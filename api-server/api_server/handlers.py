"""The verbs on a resource URL, over HTTP: from a request to an operation and back.

A ``Target`` (what the URL names) and the method pick the verb; the query gives its options
(``dryRun``, ``fieldValidation``, ``fieldManager``, ``force``, selectors, pages), ``bodies.py``
decodes the body within the limits, ``Operations`` does the work. A client that asks for
``as=Table`` gets a ``meta.k8s.io/v1 Table`` (``kubectl get`` columns); watches go to ``streams.py``.
A subresource with a handler of its own (pods' ``log``, proxied to a node) is a branch of
``handle`` calling a module of its own. With an ``AuditLog`` every request is recorded in it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from api_server.audit import AuditLog, verb_of
from api_server.binding import bind
from api_server.bodies import decode_body, decode_patch, read_body
from api_server.errors import ApiError, BadRequest, MethodNotAllowed, NotFound
from api_server.operations import Operations, WriteOptions
from api_server.patch import check_patch_type
from api_server.pod_log import PodLogs, serve_pod_log
from api_server.resources import ResourceType
from api_server.responses import json_response
from api_server.routing import Target, bool_param, selectors, wants_table
from api_server.streams import WatchStreams
from api_server.tables import table

__all__ = ["ResourceHandlers"]

Object = dict[str, Any]


def _content_type(request: web.Request) -> str:
    return request.headers.get("Content-Type", "").split(";", maxsplit=1)[0].strip()


def _write_options(request: web.Request) -> WriteOptions:
    return WriteOptions(
        dry_run=request.query.get("dryRun") == "All",
        field_validation=request.query.get("fieldValidation", "Warn"),
        field_manager=request.query.get("fieldManager", ""),
        force=bool_param(request, "force"),
    )


class ResourceHandlers:
    """The resource requests of one server instance."""

    def __init__(
        self,
        ops: Operations,
        watches: WatchStreams,
        pod_logs: PodLogs | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        self.ops = ops
        self.watches = watches
        self.pod_logs = pod_logs
        self.audit = audit

    async def handle(self, request: web.Request, target: Target) -> web.StreamResponse:
        if self.audit is None:
            return await self._handle(request, target)
        received = datetime.now(UTC)
        if verb_of(request, target) == "watch":
            self.audit.record(request, target, 200, received, started=True)
        try:
            response = await self._handle(request, target)
        except ApiError as exc:
            self.audit.record(request, target, exc.code, received)
            raise
        if verb_of(request, target) != "watch":
            self.audit.record(request, target, response.status, received)
        return response

    async def _handle(self, request: web.Request, target: Target) -> web.StreamResponse:
        method = request.method
        rtype = target.rtype
        ns = (target.namespace or "") if rtype.namespaced else ""
        if rtype.namespaced and not target.name and target.namespace is None and method != "GET":
            raise MethodNotAllowed(
                f"the server does not allow this method on the requested resource ({method})"
            )
        if rtype.namespaced and target.name and target.namespace is None:
            raise NotFound("the server could not find the requested resource")
        if target.subresource == "log" and target.name and method == "GET":
            return await serve_pod_log(request, self.ops, rtype, ns, target.name, self.pod_logs)
        if target.subresource == "binding" and target.name and method == "POST":
            body = decode_body(await read_body(request), _content_type(request))
            return json_response(bind(self.ops, rtype, ns, target.name, body), 201)
        if method == "GET":
            if target.watch or bool_param(request, "watch"):
                return await self.watches.serve(request, target)
            if target.name:
                return self._object_response(request, rtype, self.ops.get(rtype, ns, target.name))
            return self._list(request, target)
        if method == "POST" and not target.name:
            options = _write_options(request)
            body = decode_body(await read_body(request), _content_type(request))
            created = self.ops.create(rtype, ns, body, options)
            return json_response(created, 201, warnings=options.warnings)
        if method == "PUT" and target.name:
            options = _write_options(request)
            body = decode_body(await read_body(request), _content_type(request))
            updated = self.ops.update(
                rtype, ns, target.name, body, subresource=target.subresource, options=options
            )
            return json_response(updated, warnings=options.warnings)
        if method == "PATCH" and target.name:
            options = _write_options(request)
            content_type = _content_type(request)
            check_patch_type(content_type, custom=rtype.custom)  # 415 before the body is read
            body = decode_patch(await read_body(request), content_type)
            patched, created_now = self.ops.patch(
                rtype, ns, target.name, content_type, body, subresource=target.subresource, options=options
            )
            return json_response(patched, 201 if created_now else 200, warnings=options.warnings)
        if method == "DELETE" and target.name and not target.subresource:
            raw = await read_body(request)
            delete_options = decode_body(raw, _content_type(request)) if raw.strip() else {}
            deleted = self.ops.delete(
                rtype, ns, target.name, delete_options, dry_run=request.query.get("dryRun") == "All"
            )
            return json_response(deleted)
        if method == "DELETE" and not target.name:
            labels, fields = selectors(request)
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

    def _object_response(self, request: web.Request, rtype: ResourceType, obj: Object) -> web.Response:
        if wants_table(request):
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
        labels, fields = selectors(request)
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
        if wants_table(request):
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
