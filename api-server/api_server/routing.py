"""Which part of the server answers a URL, and what a resource URL names.

One catch-all aiohttp route ends in ``Router.dispatch``. Health, ``/version``, discovery (``/api``,
``/apis``, legacy and aggregated) and OpenAPI are answered here; a resource path (``/api/v1/...``
or ``/apis/G/V/...``) is parsed into a ``Target`` (type, namespace, name, subresource, watch) and
handed to the resource handler. A new top-level path (``/metrics``) is a branch of ``dispatch``;
a new resource or subresource is declared in ``builtin.py`` and arrives as a ``Target``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from api_server import discovery, openapi
from api_server.errors import NotFound
from api_server.resources import Registry, ResourceType
from api_server.responses import json_response
from api_server.selectors import Selector, parse_field_selector, parse_label_selector

__all__ = ["ResourceHandler", "Router", "Target", "bool_param", "selectors", "wants_table"]

_NOT_FOUND = "the server could not find the requested resource"


@dataclass(frozen=True)
class Target:
    """What a resource URL names."""

    rtype: ResourceType
    namespace: str | None  # None: all namespaces (or cluster-scoped)
    name: str
    subresource: str
    watch: bool


ResourceHandler = Callable[[web.Request, Target], Awaitable[web.StreamResponse]]


def wants_table(request: web.Request) -> bool:
    return "as=Table" in request.headers.get("Accept", "")


def _wants_aggregated(request: web.Request) -> bool:
    return "as=APIGroupDiscoveryList" in request.headers.get("Accept", "")


def bool_param(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("true", "1")


def selectors(request: web.Request) -> tuple[Selector | None, Selector | None]:
    """The label and field selectors of the query."""
    return (
        parse_label_selector(request.query.get("labelSelector")),
        parse_field_selector(request.query.get("fieldSelector")),
    )


class Router:
    """Routes every request of one server."""

    def __init__(self, registry: Registry, resources: ResourceHandler, *, server_address: str) -> None:
        self.registry = registry
        self.resources = resources
        self.server_address = server_address  # for legacy discovery; set once the port is known

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
                        discovery.aggregated_discovery(self.registry, legacy=True),
                        content_type=discovery.AGGREGATED_CONTENT_TYPE,
                    )
                return json_response(discovery.api_versions(self.server_address))
            group, version, rest = "", parts[1], parts[2:]
        elif parts[0] == "apis":
            if len(parts) == 1:
                if _wants_aggregated(request):
                    return json_response(
                        discovery.aggregated_discovery(self.registry, legacy=False),
                        content_type=discovery.AGGREGATED_CONTENT_TYPE,
                    )
                return json_response(discovery.api_group_list(self.registry))
            if len(parts) == 2:
                versions = self.registry.group_versions().get(parts[1])
                if not versions:
                    raise NotFound(_NOT_FOUND)
                return json_response(discovery.api_group(parts[1], versions))
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise NotFound(_NOT_FOUND)
        if version not in self.registry.group_versions().get(group, []):
            raise NotFound(_NOT_FOUND)
        if not rest:
            return json_response(discovery.api_resource_list(self.registry, group, version))
        return await self.resources(request, self._target(group, version, rest))

    def _openapi(self, request: web.Request, parts: list[str]) -> web.Response:
        if parts == ["openapi", "v2"]:
            return openapi.empty_v2(request.headers.get("Accept", ""))
        if parts[:2] != ["openapi", "v3"]:
            raise NotFound(_NOT_FOUND)
        if len(parts) == 2:
            return json_response(openapi.index(self.registry))
        rest = parts[2:]
        if rest[0] == "api" and len(rest) == 2:
            group, version = "", rest[1]
        elif rest[0] == "apis" and len(rest) == 3:
            group, version = rest[1], rest[2]
        else:
            raise NotFound(_NOT_FOUND)
        if version not in self.registry.group_versions().get(group, []):
            raise NotFound(_NOT_FOUND)
        return json_response(openapi.document(self.registry, group, version))

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
            raise NotFound(_NOT_FOUND)
        rtype = self.registry.find(group, version, rest[0])
        name = rest[1] if len(rest) > 1 else ""
        sub = rest[2] if len(rest) > 2 else ""
        if namespace is not None and not rtype.namespaced:
            raise NotFound(_NOT_FOUND)
        if sub and sub not in rtype.all_subresources:
            raise NotFound(f"the server could not find the requested resource ({rtype.plural}/{sub})")
        return Target(rtype, namespace, name, sub, watch)
