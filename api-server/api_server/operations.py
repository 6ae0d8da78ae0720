"""The verbs of the Kubernetes API on stored objects: create, get, list, update, patch, delete.

This is where the verbs' semantics live, apart from HTTP: optimistic concurrency (409 on a stale
resourceVersion), status only through ``/status``, finalizers and ``deletionTimestamp``, namespace
cascade, server-side apply creating what is missing, list pages. What every write is checked
against is in ``validation.py``, the metadata the server owns in ``meta.py``, what some built-in
kinds get in ``builtin.py``, the CRD lifecycle in ``crds.py``. A verb of a subresource with
semantics of its own (pods' ``binding``) is a method here.
"""

from __future__ import annotations

import base64
import copy
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

import orjson

from api_server.apply import apply_configuration
from api_server.builtin import (
    CRD_TYPE,
    DEFAULT_NAMESPACES,
    NAMESPACE_TYPE,
    check_write,
    deletion_grace,
    normalize,
    prepare_new,
    prepare_update,
)
from api_server.crds import serve_crd, set_crd_status, stop_serving_crd
from api_server.errors import AlreadyExists, BadRequest, Cause, Conflict, Invalid, NotFound
from api_server.limits import check_depth
from api_server.meta import keep_server_fields, now_timestamp, stamp_new
from api_server.patch import (
    APPLY_PATCH,
    JSON_PATCH,
    STRATEGIC_PATCH,
    apply_json_patch,
    apply_merge_patch,
    apply_strategic_merge_patch,
    check_patch_type,
)
from api_server.resources import Registry, ResourceType
from api_server.selectors import Selector
from api_server.storage import Store, copy_object
from api_server.validation import check_body, check_kind, validate

__all__ = ["ListResult", "Operations", "WriteOptions"]

log = logging.getLogger(__name__)

Object = dict[str, Any]


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
        obj = check_body(rtype, namespace, body, name=None)
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
        stamp_new(meta)
        if rtype.status_subresource and rtype.custom:
            obj.pop("status", None)
        if rtype.key == CRD_TYPE.key:
            set_crd_status(obj)
        prepare_new(rtype, obj, self.store)
        normalize(rtype, obj)
        options.warnings += validate(rtype, obj, options.field_validation)
        check_write(rtype, obj, self.store, None)
        if options.dry_run:
            meta["resourceVersion"] = str(self.store.rv)
            return obj
        self.store.write(rtype.key, obj, "ADDED")
        self._after_write(rtype, obj, deleted=False)
        return self._present(rtype, obj)

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
        new = check_body(rtype, namespace, body, name=name)
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
        body: Any,
        *,
        subresource: str = "",
        options: WriteOptions | None = None,
    ) -> tuple[Object, bool]:
        """Apply a decoded patch; returns the object and whether it was created (server-side apply)."""
        options = options or WriteOptions()
        check_patch_type(content_type, custom=rtype.custom)
        if content_type == APPLY_PATCH:
            self._check_apply(rtype, body, options)
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
                check_depth(patched)  # copies and moves may nest deeper than the body did
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
        new = check_body(rtype, namespace, patched, name=name)
        return self._replace(rtype, existing, new, subresource, options), False

    @staticmethod
    def _check_apply(rtype: ResourceType, body: Any, options: WriteOptions) -> None:
        if not options.field_manager:
            raise Invalid(
                "PatchOptions",
                "meta.k8s.io",
                "",
                [Cause("fieldManager", "Required value: is required for apply patch", "FieldValueRequired")],
            )
        if not isinstance(body, dict):
            raise BadRequest("an apply patch must be an object")
        check_kind(rtype, body)
        body.get("metadata", {}).pop("resourceVersion", None)

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
        keep_server_fields(old, new, namespaced=rtype.namespaced)
        meta = new["metadata"]
        if rtype.key == CRD_TYPE.key:
            set_crd_status(new)
        prepare_update(rtype, old, new, self.store)  # and normalize
        options.warnings += validate(rtype, new, options.field_validation)
        check_write(rtype, new, self.store, old)
        meta["resourceVersion"] = old["metadata"]["resourceVersion"]
        if new == old:
            return self._present(rtype, old)
        if options.dry_run:
            return new
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and old["metadata"].get("finalizers"):
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
        grace = deletion_grace(rtype, obj, options)
        if grace and grace < obj["metadata"].get("deletionGracePeriodSeconds", grace + 1):
            # A pod on a node: kept, Terminating, until its node has stopped it (or a shorter grace).
            obj["metadata"]["deletionTimestamp"] = now_timestamp(grace)
            obj["metadata"]["deletionGracePeriodSeconds"] = grace
            self.store.write(rtype.key, obj, "MODIFIED")
            return self._present(rtype, obj)
        if grace:
            return self._present(rtype, obj)
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

    def _after_write(self, rtype: ResourceType, obj: Object, *, deleted: bool) -> None:
        if rtype.key == CRD_TYPE.key:
            if deleted:
                stop_serving_crd(self.registry, self.store, obj)
            else:
                serve_crd(self.registry, obj)
