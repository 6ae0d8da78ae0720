"""OpenAPI v3 documents for the served group versions, as kubectl reads them.

Plain ``kubectl apply`` (validation on) asks ``/openapi/v3`` whether a kind's create and patch
operations take the ``fieldValidation`` parameter; when they do, it sends ``fieldValidation=Strict``
and lets the server validate. ``kubectl explain`` reads the schemas. Custom resources get their CRD
schema; built-in kinds an open object schema (kubectl computes their strategic merge patches from
its own compiled-in types, so their patch operations do not advertise strategic merge here).
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from aiohttp import web

from api_server.resources import Registry, ResourceType

__all__ = ["document", "empty_v2", "index", "schema_name"]

Object = dict[str, Any]

_PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml")


def gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def schema_name(rtype: ResourceType) -> str:
    """``io.kubeedge.devices.v1beta1.Device``: the reversed group, as the real server names them."""
    if not rtype.group:
        return f"io.k8s.api.core.{rtype.version}.{rtype.kind}"
    reversed_group = ".".join(reversed(rtype.group.split(".")))
    return f"{reversed_group}.{rtype.version}.{rtype.kind}"


def _gvk(rtype: ResourceType) -> Object:
    return {"group": rtype.group, "version": rtype.version, "kind": rtype.kind}


def _params(*names: str) -> list[Object]:
    return [{"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": True}} for n in names]


def _ref(rtype: ResourceType) -> Object:
    return {"schema": {"$ref": f"#/components/schemas/{schema_name(rtype)}"}}


def _operation(
    rtype: ResourceType,
    action: str,
    op_id: str,
    *,
    body_types: tuple[str, ...] = (),
    params: tuple[str, ...] = (),
) -> Object:
    op: Object = {
        "operationId": op_id,
        "parameters": _params(*params),
        "responses": {"200": {"description": "OK", "content": {"application/json": _ref(rtype)}}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": _gvk(rtype),
    }
    if body_types:
        op["requestBody"] = {"content": {t: _ref(rtype) for t in body_types}, "required": True}
    return op


def _paths(rtype: ResourceType) -> Object:
    prefix = "/" + gv_path(rtype.group, rtype.version)
    scope = "/namespaces/{namespace}" if rtype.namespaced else ""
    collection = f"{prefix}{scope}/{rtype.plural}"
    item = f"{collection}/{{name}}"
    kind = rtype.kind
    ns = "Namespaced" if rtype.namespaced else ""
    write = ("dryRun", "fieldManager", "fieldValidation")
    paths: Object = {
        collection: {
            "get": _operation(
                rtype,
                "list",
                f"list{ns}{kind}",
                params=("labelSelector", "fieldSelector", "limit", "continue", "resourceVersion", "watch"),
            ),
            "post": _operation(
                rtype,
                "post",
                f"create{ns}{kind}",
                body_types=("application/json", "application/yaml"),
                params=write,
            ),
        },
        item: {
            "get": _operation(rtype, "get", f"read{ns}{kind}"),
            "put": _operation(
                rtype,
                "put",
                f"replace{ns}{kind}",
                body_types=("application/json", "application/yaml"),
                params=write,
            ),
            "patch": _operation(
                rtype, "patch", f"patch{ns}{kind}", body_types=_PATCH_TYPES, params=(*write, "force")
            ),
            "delete": _operation(
                rtype, "delete", f"delete{ns}{kind}", params=("dryRun", "propagationPolicy")
            ),
        },
    }
    for sub in rtype.all_subresources:
        paths[f"{item}/{sub}"] = {
            "get": _operation(rtype, "get", f"read{ns}{kind}Status"),
            "put": _operation(
                rtype, "put", f"replace{ns}{kind}Status", body_types=("application/json",), params=write
            ),
            "patch": _operation(
                rtype, "patch", f"patch{ns}{kind}Status", body_types=_PATCH_TYPES, params=(*write, "force")
            ),
        }
    return paths


def _component(rtype: ResourceType) -> Object:
    base: Object = (
        dict(rtype.schema)
        if rtype.schema
        else {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    )
    properties = dict(base.get("properties") or {})
    properties.setdefault(
        "apiVersion",
        {
            "type": "string",
            "description": "APIVersion defines the versioned schema of this representation of an object.",
        },
    )
    properties.setdefault(
        "kind",
        {
            "type": "string",
            "description": "Kind is a string value representing the REST resource this object represents.",
        },
    )
    properties["metadata"] = {"type": "object", "description": "Standard object's metadata."}
    base["properties"] = properties
    base["x-kubernetes-group-version-kind"] = [_gvk(rtype)]
    return base


def document(registry: Registry, group: str, version: str) -> Object:
    types = registry.in_group_version(group, version)
    paths: Object = {}
    schemas: Object = {}
    for rtype in types:
        paths.update(_paths(rtype))
        schemas[schema_name(rtype)] = _component(rtype)
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.37.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def index(registry: Registry) -> Object:
    paths: Object = {}
    for group, versions in sorted(registry.group_versions().items()):
        for version in versions:
            digest = (
                hashlib.sha512(orjson.dumps(document(registry, group, version), option=orjson.OPT_SORT_KEYS))
                .hexdigest()
                .upper()
            )
            path = gv_path(group, version)
            paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest[:64]}"}
    return {"paths": paths}


_V2_PROTOBUF = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"


def empty_v2(accept: str) -> web.Response:
    """An OpenAPI v2 document with no definitions.

    kubectl falls back to v2 when a kind is missing from v3 (a custom resource applied before its
    CRD); a 404 there becomes a confusing validation error, while an empty document lets kubectl
    say what is wrong ("no matches for kind ... ensure CRDs are installed first"). client-go asks
    for protobuf, in which an empty document is zero bytes.
    """
    if _V2_PROTOBUF in accept or "json" not in accept:
        # as kube-openapi answers: "@" is not valid in a returned media type
        return web.Response(body=b"", headers={"Content-Type": _V2_PROTOBUF.replace("@", ".")})
    body = {
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": "v1.37.0"},
        "paths": {},
        "definitions": {},
    }
    return web.Response(body=orjson.dumps(body), content_type="application/json")
