"""The verbs of the Kubernetes API on stored objects: create, get, list, update, patch, delete.

This is where API semantics live, apart from HTTP: server-set metadata (uid, creationTimestamp,
generation, resourceVersion), optimistic concurrency (409 on a stale resourceVersion), status only
through ``/status``, schema defaulting/pruning/validation of custom resources, finalizers and
``deletionTimestamp``, namespace cascade, and serving a CRD's resources as soon as it is stored.
"""

from __future__ import annotations

import base64
import copy
import logging
import re
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import yaml

from api_server import schema as schema_mod
from api_server.apply import apply_configuration
from api_server.builtin import CRD_TYPE, DEFAULT_NAMESPACES, NAMESPACE_TYPE
from api_server.errors import (
    AlreadyExists,
    BadRequest,
    Cause,
    Conflict,
    Invalid,
    NotFound,
    UnsupportedMediaType,
)
from api_server.patch import apply_json_patch, apply_merge_patch, apply_strategic_merge_patch
from api_server.resources import Registry, ResourceType, validate_crd
from api_server.selectors import Selector
from api_server.storage import Store, copy_object

__all__ = ["ListResult", "Operations", "WriteOptions", "normalize_crd_spec", "now_timestamp"]

log = logging.getLogger(__name__)

Object = dict[str, Any]

_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_SERVER_FIELDS = (
    "uid",
    "creationTimestamp",
    "resourceVersion",
    "generation",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
)

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES = (MERGE_PATCH, JSON_PATCH, STRATEGIC_PATCH, APPLY_PATCH)


def now_timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class WriteOptions:
    """Query parameters that change how a write is done."""

    dry_run: bool = False
    field_validation: str = "Warn"  # Strict | Warn | Ignore
    field_manager: str = ""
    force: bool = False
    warnings: list[str] = field(default_factory=list)


@dataclass
class ListResult:
    items: list[Object]
    resource_version: str
    continue_token: str = ""
    remaining: int | None = None


class Operations:
    """API verbs over a ``Store``, for the types in a ``Registry``."""

    def __init__(self, store: Store, registry: Registry) -> None:
        self.store = store
        self.registry = registry
        for crd in list(store.items(CRD_TYPE.key)):
            try:
                registry.add_crd(crd)
            except (KeyError, TypeError, ValueError):
                log.exception("stored CRD %s cannot be served", crd.get("metadata", {}).get("name"))
        for name in DEFAULT_NAMESPACES:
            if store.get(NAMESPACE_TYPE.key, "", name) is None:
                self.create(
                    NAMESPACE_TYPE, "", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
                )

    # -- reads -------------------------------------------------------------------------------

    def get(self, rtype: ResourceType, namespace: str, name: str) -> Object:
        obj = self.store.get(rtype.key, namespace, name)
        if obj is None:
            raise NotFound.object(rtype.plural, rtype.group, name)
        return self._present(rtype, obj)

    def _present(self, rtype: ResourceType, obj: Object) -> Object:
        if obj.get("apiVersion") == rtype.api_version:
            return obj
        shown = dict(obj)
        shown["apiVersion"] = rtype.api_version
        return shown

    def list_objects(
        self,
        rtype: ResourceType,
        namespace: str | None,
        *,
        labels: Selector | None = None,
        fields: Selector | None = None,
        limit: int = 0,
        continue_token: str = "",
    ) -> ListResult:
        start: tuple[str, str] | None = None
        if continue_token:
            try:
                decoded = orjson.loads(base64.urlsafe_b64decode(continue_token.encode()))
                start = (str(decoded["ns"]), str(decoded["name"]))
            except (ValueError, KeyError, TypeError) as exc:
                raise BadRequest(f"invalid continue token: {exc}") from exc
        items: list[Object] = []
        next_token = ""
        remaining = 0
        for obj in self.store.items(rtype.key, namespace):
            meta = obj["metadata"]
            position = (str(meta.get("namespace", "")), str(meta["name"]))
            if start is not None and position <= start:
                continue
            if labels is not None and not labels(obj):
                continue
            if fields is not None and not fields(obj):
                continue
            if limit and len(items) >= limit:
                if not next_token:
                    last = items[-1]["metadata"]
                    next_token = base64.urlsafe_b64encode(
                        orjson.dumps({"ns": last.get("namespace", ""), "name": last["name"]})
                    ).decode()
                remaining += 1
                continue
            items.append(self._present(rtype, obj))
        return ListResult(items, str(self.store.rv), next_token, remaining if next_token else None)

    # -- create ------------------------------------------------------------------------------

    def create(
        self, rtype: ResourceType, namespace: str, body: Any, options: WriteOptions | None = None
    ) -> Object:
        options = options or WriteOptions()
        obj = self._check_body(rtype, namespace, body, name=None)
        meta = obj["metadata"]
        if not meta.get("name"):
            prefix = meta.get("generateName")
            if not prefix:
                raise Invalid(
                    rtype.kind,
                    rtype.group,
                    "",
                    [
                        Cause(
                            "metadata.name",
                            "Required value: name or generateName is required",
                            "FieldValueRequired",
                        )
                    ],
                )
            meta["name"] = f"{prefix}{secrets.token_hex(3)[:5]}"
        name = str(meta["name"])
        if rtype.namespaced:
            meta["namespace"] = namespace
            if self.store.get(NAMESPACE_TYPE.key, "", namespace) is None:
                raise NotFound.object("namespaces", "", namespace)
        else:
            meta.pop("namespace", None)
        if self.store.get(rtype.key, namespace if rtype.namespaced else "", name) is not None:
            raise AlreadyExists.object(rtype.plural, rtype.group, name)
        for key in _SERVER_FIELDS:
            meta.pop(key, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_timestamp()
        meta["generation"] = 1
        if rtype.status_subresource and rtype.custom:
            obj.pop("status", None)
        self._type_hooks_create(rtype, obj)
        _normalize(rtype, obj)
        self._validate(rtype, obj, options)
        if options.dry_run:
            meta["resourceVersion"] = str(self.store.rv)
            return obj
        self.store.write(rtype.key, obj, "ADDED")
        self._after_write(rtype, obj, deleted=False)
        return self._present(rtype, obj)

    def _type_hooks_create(self, rtype: ResourceType, obj: Object) -> None:
        if rtype.key == NAMESPACE_TYPE.key:
            obj.setdefault("spec", {})
            obj["status"] = {"phase": "Active"}
            obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
        elif rtype.key == "pods":
            obj.pop("status", None)
            obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
        elif rtype.key == CRD_TYPE.key:
            self._crd_status(obj)

    def _crd_status(self, crd: Object) -> None:
        validate_crd(crd)
        spec = crd["spec"] = normalize_crd_spec(crd["spec"])
        names = spec["names"]
        stamp = now_timestamp()
        old = crd.get("status") if isinstance(crd.get("status"), dict) else {}
        assert isinstance(old, dict)
        stored = list(old.get("storedVersions") or [])
        for version in spec["versions"]:
            if version.get("storage") and version["name"] not in stored:
                stored.append(version["name"])
        crd["status"] = {
            "acceptedNames": names,
            "conditions": [
                {
                    "type": "NamesAccepted",
                    "status": "True",
                    "reason": "NoConflicts",
                    "message": "no conflicts found",
                    "lastTransitionTime": stamp,
                },
                {
                    "type": "Established",
                    "status": "True",
                    "reason": "InitialNamesAccepted",
                    "message": "the initial names have been accepted",
                    "lastTransitionTime": stamp,
                },
            ],
            "storedVersions": stored,
        }

    # -- update / patch ----------------------------------------------------------------------

    def update(
        self,
        rtype: ResourceType,
        namespace: str,
        name: str,
        body: Any,
        *,
        subresource: str = "",
        options: WriteOptions | None = None,
    ) -> Object:
        options = options or WriteOptions()
        old = self._existing(rtype, namespace, name)
        new = self._check_body(rtype, namespace, body, name=name)
        given_rv = str(new["metadata"].get("resourceVersion") or "")
        if not given_rv and not rtype.allow_unconditional_update:
            raise Invalid(
                rtype.kind,
                rtype.group,
                name,
                [Cause("metadata.resourceVersion", "Invalid value: 0x0: must be specified for an update")],
            )
        if given_rv and given_rv != old["metadata"]["resourceVersion"]:
            raise Conflict.stale(rtype.plural, rtype.group, name)
        return self._replace(rtype, old, new, subresource, options)

    def patch(
        self,
        rtype: ResourceType,
        namespace: str,
        name: str,
        content_type: str,
        raw: bytes,
        *,
        subresource: str = "",
        options: WriteOptions | None = None,
    ) -> tuple[Object, bool]:
        """Apply a patch; returns the object and whether it was created (server-side apply)."""
        options = options or WriteOptions()
        if content_type not in PATCH_TYPES:
            raise UnsupportedMediaType(
                "the body of the request was in an unknown format - accepted media types include: "
                f"{', '.join(PATCH_TYPES)}"
            )
        if content_type == STRATEGIC_PATCH and rtype.custom:
            raise UnsupportedMediaType(
                "the body of the request was in an unknown format - accepted media types include: "
                f"{JSON_PATCH}, {MERGE_PATCH}, {APPLY_PATCH}"
            )
        try:
            body = yaml.safe_load(raw) if content_type == APPLY_PATCH else orjson.loads(raw)
        except (orjson.JSONDecodeError, yaml.YAMLError) as exc:
            raise BadRequest(f"error decoding patch: {exc}") from exc
        if content_type == APPLY_PATCH:
            if not options.field_manager:
                raise Invalid(
                    "PatchOptions",
                    "meta.k8s.io",
                    "",
                    [
                        Cause(
                            "fieldManager",
                            "Required value: is required for apply patch",
                            "FieldValueRequired",
                        )
                    ],
                )
            if not isinstance(body, dict):
                raise BadRequest("an apply patch must be an object")
            self._check_kind(rtype, body)
            body.get("metadata", {}).pop("resourceVersion", None)
        existing = self.store.get(rtype.key, namespace if rtype.namespaced else "", name)
        if existing is None:
            if content_type == APPLY_PATCH and not subresource:
                body.setdefault("metadata", {}).setdefault("name", name)
                applied = apply_configuration(
                    {}, body, options.field_manager, rtype.api_version, now_timestamp()
                )
                return self.create(rtype, namespace, applied, options), True
            raise NotFound.object(rtype.plural, rtype.group, name)
        current = copy_object(existing)
        try:
            if content_type == JSON_PATCH:
                patched = apply_json_patch(current, body)
            elif content_type == STRATEGIC_PATCH:
                patched = apply_strategic_merge_patch(current, body)
            elif content_type == APPLY_PATCH:
                patched = apply_configuration(
                    current, body, options.field_manager, rtype.api_version, now_timestamp()
                )
            else:
                if not isinstance(body, dict):
                    raise BadRequest("a merge patch must be a JSON object")
                patched = apply_merge_patch(current, body)
        except Invalid as exc:
            raise Invalid(rtype.kind, rtype.group, name, exc.causes) from exc
        if not isinstance(patched, dict):
            raise BadRequest("the patch result is not an object")
        meta = patched.get("metadata")
        if not isinstance(meta, dict):
            raise BadRequest("the patch removed metadata")
        if str(meta.get("resourceVersion") or "") != existing["metadata"]["resourceVersion"]:
            raise Conflict.stale(rtype.plural, rtype.group, name)
        new = self._check_body(rtype, namespace, patched, name=name)
        return self._replace(rtype, existing, new, subresource, options), False

    def _replace(
        self, rtype: ResourceType, old: Object, new: Object, subresource: str, options: WriteOptions
    ) -> Object:
        if subresource == "status":
            merged = copy_object(old)
            if "status" in new:
                merged["status"] = new["status"]
            else:
                merged.pop("status", None)
            new = merged
        elif subresource:
            raise NotFound(f"the server could not find the requested resource ({subresource})")
        elif rtype.status_subresource and rtype.key != CRD_TYPE.key:
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)
        meta = new["metadata"]
        for key in (
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ):
            if key in old["metadata"]:
                meta[key] = old["metadata"][key]
            else:
                meta.pop(key, None)
        if rtype.namespaced:
            meta["namespace"] = old["metadata"]["namespace"]
        else:
            meta.pop("namespace", None)
        if _spec_of(new) != _spec_of(old):
            meta["generation"] = int(old["metadata"].get("generation", 1)) + 1
        if rtype.key == CRD_TYPE.key:
            self._crd_status(new)
        _normalize(rtype, new)
        if rtype.key == NAMESPACE_TYPE.key and not isinstance(new.get("status"), dict):
            new["status"] = {"phase": "Active"}
        self._validate(rtype, new, options)
        meta["resourceVersion"] = old["metadata"]["resourceVersion"]
        if new == old:
            return self._present(rtype, old)
        if options.dry_run:
            return new
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self.store.write(rtype.key, new, "DELETED")
            self._after_write(rtype, new, deleted=True)
            return self._present(rtype, new)
        self.store.write(rtype.key, new, "MODIFIED")
        self._after_write(rtype, new, deleted=False)
        return self._present(rtype, new)

    # -- delete ------------------------------------------------------------------------------

    def delete(
        self,
        rtype: ResourceType,
        namespace: str,
        name: str,
        options: Object | None = None,
        *,
        dry_run: bool = False,
    ) -> Object:
        old = self._existing(rtype, namespace, name)
        preconditions = (options or {}).get("preconditions") or {}
        if isinstance(preconditions, dict):
            if preconditions.get("uid") and preconditions["uid"] != old["metadata"]["uid"]:
                raise Conflict(
                    f"Precondition failed: UID in precondition: {preconditions['uid']}, "
                    f"UID in object meta: {old['metadata']['uid']}"
                )
            wanted_rv = preconditions.get("resourceVersion")
            if wanted_rv and wanted_rv != old["metadata"]["resourceVersion"]:
                raise Conflict.stale(rtype.plural, rtype.group, name)
        obj = copy_object(old)
        if dry_run:
            return obj
        if obj["metadata"].get("finalizers"):
            if not obj["metadata"].get("deletionTimestamp"):
                obj["metadata"]["deletionTimestamp"] = now_timestamp()
                obj["metadata"]["deletionGracePeriodSeconds"] = 0
                self.store.write(rtype.key, obj, "MODIFIED")
            return self._present(rtype, obj)
        if rtype.key == NAMESPACE_TYPE.key:
            self._delete_namespace_contents(name)
        self.store.write(rtype.key, obj, "DELETED")
        self._after_write(rtype, obj, deleted=True)
        return self._present(rtype, obj)

    def delete_collection(
        self, rtype: ResourceType, namespace: str | None, *, labels: Selector | None, fields: Selector | None
    ) -> list[Object]:
        found = self.list_objects(rtype, namespace, labels=labels, fields=fields).items
        return [self.delete(rtype, o["metadata"].get("namespace", ""), o["metadata"]["name"]) for o in found]

    def _delete_namespace_contents(self, namespace: str) -> None:
        keys = {r.key: r for r in self.registry if r.namespaced}
        for rtype in keys.values():
            for obj in list(self.store.items(rtype.key, namespace)):
                doomed = copy_object(obj)
                self.store.write(rtype.key, doomed, "DELETED")

    # -- helpers -----------------------------------------------------------------------------

    def _existing(self, rtype: ResourceType, namespace: str, name: str) -> Object:
        obj = self.store.get(rtype.key, namespace if rtype.namespaced else "", name)
        if obj is None:
            raise NotFound.object(rtype.plural, rtype.group, name)
        return obj

    def _check_kind(self, rtype: ResourceType, body: Object) -> None:
        kind = body.get("kind")
        if kind and kind != rtype.kind:
            raise BadRequest(f"the server rejected our request: kind {kind!r} does not match {rtype.kind!r}")
        api_version = body.get("apiVersion")
        if api_version and str(api_version).rsplit("/", 1)[0] != (rtype.group or api_version):
            raise BadRequest(
                f"the API version in the data ({api_version}) does not match the expected API version "
                f"({rtype.api_version})"
            )

    def _check_body(self, rtype: ResourceType, namespace: str, body: Any, *, name: str | None) -> Object:
        if not isinstance(body, dict):
            raise BadRequest("the request body must be a JSON object")
        obj = copy_object(body)
        self._check_kind(rtype, obj)
        obj["apiVersion"] = rtype.api_version
        obj["kind"] = rtype.kind
        meta = obj.get("metadata")
        if meta is None:
            meta = obj["metadata"] = {}
        if not isinstance(meta, dict):
            raise BadRequest("metadata must be an object")
        if name is not None:
            if meta.get("name") and meta["name"] != name:
                raise BadRequest(
                    f"the name of the object ({meta['name']}) does not match the name on the URL ({name})"
                )
            meta["name"] = name
        if rtype.namespaced and meta.get("namespace") and meta["namespace"] != namespace:
            raise BadRequest(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        return obj

    def _validate(self, rtype: ResourceType, obj: Object, options: WriteOptions) -> None:
        meta = obj["metadata"]
        name = str(meta.get("name", ""))
        causes: list[Cause] = []
        if len(name) > 253 or not _NAME_RE.match(name):
            causes.append(
                Cause(
                    "metadata.name",
                    f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of lower case '
                    "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
                    "character",
                )
            )
        for key in ("labels", "annotations"):
            value = meta.get(key)
            if value is not None and (
                not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values())
            ):
                causes.append(Cause(f"metadata.{key}", "Invalid value: must be a map of strings"))
        if rtype.schema is not None:
            schema_mod.apply_defaults(rtype.schema, obj)
            unknown = schema_mod.prune_unknown(rtype.schema, obj)
            if unknown:
                if options.field_validation == "Strict":
                    fields = ", ".join(f'unknown field "{u}"' for u in unknown)
                    raise BadRequest(f"strict decoding error: {fields}")
                if options.field_validation != "Ignore":
                    options.warnings.extend(f'unknown field "{u}"' for u in unknown)
            causes += schema_mod.validate(rtype.schema, obj)
        if causes:
            raise Invalid(rtype.kind, rtype.group, name, causes)

    def _after_write(self, rtype: ResourceType, obj: Object, *, deleted: bool) -> None:
        if rtype.key != CRD_TYPE.key:
            return
        name = str(obj["metadata"]["name"])
        if deleted:
            crd_types = self.registry.by_key(f"{obj['spec']['group']}/{obj['spec']['names']['plural']}")
            self.registry.remove_crd(name)
            if crd_types:
                for doomed in list(self.store.items(crd_types[0].key)):
                    self.store.write(crd_types[0].key, copy_object(doomed), "DELETED")
            log.info("no longer serving %s", name)
        else:
            self.registry.add_crd(obj)
            log.info("serving %s", name)


def _spec_of(obj: Object) -> Object:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _normalize(rtype: ResourceType, obj: Object) -> None:
    """What the real server does to some built-in bodies on every write."""
    if rtype.key == "secrets":
        string_data = obj.pop("stringData", None)
        if isinstance(string_data, dict):
            data = obj.setdefault("data", {})
            for key, value in string_data.items():
                data[key] = base64.b64encode(str(value).encode()).decode()
        obj.setdefault("type", "Opaque")


def normalize_crd_spec(spec: Object) -> Object:
    """A (valid) CRD spec with the defaults the server fills in: singular, listKind, served."""
    result = copy.deepcopy(spec)
    names = result["names"]
    names.setdefault("singular", str(names["kind"]).lower())
    names.setdefault("listKind", f"{names['kind']}List")
    for version in result["versions"]:
        version.setdefault("served", True)
    return result
