"""Server-side apply, simplified: the applier's fields are tracked so that dropping one removes it.

``kubectl apply --server-side`` sends the whole intended object as ``application/apply-patch+yaml``
with a field manager. The server records which fields each manager applied (``managedFields``,
``FieldsV1`` format); the next apply by that manager sets what it sends and removes what it sent
last time but no longer does. Simplifications: lists are atomic (owned and replaced whole), writes
that are not applies record no ownership, and there is no conflict detection between managers
(``force`` is accepted and changes nothing).
"""

from __future__ import annotations

import copy
from typing import Any

from api_server.patch import apply_merge_patch

__all__ = ["apply_configuration", "fields_of"]

Object = dict[str, Any]

# Identity fields are not owned: they are how the object is found.
_IDENTITY = {("apiVersion",), ("kind",), ("metadata", "name"), ("metadata", "namespace")}


def fields_of(config: Object, prefix: tuple[str, ...] = ()) -> Object:
    """The ``FieldsV1`` set of a configuration: ``{"f:spec": {"f:nodeName": {}}}``."""
    result: Object = {}
    for key, value in config.items():
        path = (*prefix, key)
        if path in _IDENTITY:
            continue
        if isinstance(value, dict) and value:
            sub = fields_of(value, path)
            if sub:  # a map of identity fields only (metadata: {name}) owns nothing
                result[f"f:{key}"] = sub
        else:
            result[f"f:{key}"] = {}
    return result


def _remove(obj: Object, old: Object, new: Object, *, top: bool = True) -> None:
    """Remove from ``obj`` the fields in ``old`` that are not in ``new``."""
    for field, sub in old.items():
        if not field.startswith("f:") or (top and field == "f:metadata" and not sub):
            continue
        key = field[2:]
        if key not in obj:
            continue
        kept = new.get(field)
        if sub and isinstance(obj[key], dict):
            # a map: remove only the keys this manager applied (others may have set the rest)
            _remove(obj[key], sub, kept if isinstance(kept, dict) else {}, top=False)
            if kept is None and not obj[key] and not (top and key == "metadata"):
                del obj[key]
        elif kept is None:
            del obj[key]


def apply_configuration(current: Object, config: Object, manager: str, api_version: str, now: str) -> Object:
    """``current`` after ``manager`` applies ``config``, with its managedFields entry updated."""
    result = copy.deepcopy(current)
    entries = [e for e in result.get("metadata", {}).get("managedFields") or [] if isinstance(e, dict)]
    previous = next(
        (e for e in entries if e.get("manager") == manager and e.get("operation") == "Apply"), None
    )
    applied = fields_of(config)
    if previous is not None and isinstance(previous.get("fieldsV1"), dict):
        _remove(result, previous["fieldsV1"], applied)
    merged = apply_merge_patch(result, config)
    assert isinstance(merged, dict)
    entry = {
        "manager": manager,
        "operation": "Apply",
        "apiVersion": api_version,
        "time": now,
        "fieldsType": "FieldsV1",
        "fieldsV1": applied,
    }
    others = [e for e in entries if e is not previous]
    merged.setdefault("metadata", {})["managedFields"] = [*others, entry]
    return merged
