"""Object metadata the server owns: uid, timestamps, generation, and the rules names follow.

Clients may send any of these fields; the server sets them on create, keeps its own values on
every update, and bumps ``generation`` when anything but metadata and status changes, as
kube-apiserver does. The name and label-map checks live here too: they are the same for every kind.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from api_server.errors import Cause

__all__ = ["keep_server_fields", "metadata_causes", "now_timestamp", "stamp_new"]

Object = dict[str, Any]

_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# Set by the server alone: dropped from a create body, taken from the stored object on update.
_SERVER_FIELDS = (
    "uid",
    "creationTimestamp",
    "resourceVersion",
    "generation",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
)
_KEPT_ON_UPDATE = (
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
)


def now_timestamp(later: float = 0.0) -> str:
    """Now (or ``later`` seconds from now) as the API writes times."""
    return (datetime.now(UTC) + timedelta(seconds=later)).strftime("%Y-%m-%dT%H:%M:%SZ")


def stamp_new(meta: Object) -> None:
    """What a new object's metadata gets on create, whatever the client sent."""
    for key in _SERVER_FIELDS:
        meta.pop(key, None)
    meta["uid"] = str(uuid.uuid4())
    meta["creationTimestamp"] = now_timestamp()
    meta["generation"] = 1


def _spec_of(obj: Object) -> Object:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def keep_server_fields(old: Object, new: Object, *, namespaced: bool) -> None:
    """Give ``new`` the server's metadata of ``old``, and a new generation if its spec changed."""
    meta, old_meta = new["metadata"], old["metadata"]
    for key in _KEPT_ON_UPDATE:
        if key in old_meta:
            meta[key] = old_meta[key]
        else:
            meta.pop(key, None)
    if namespaced:
        meta["namespace"] = old_meta["namespace"]
    else:
        meta.pop("namespace", None)
    if _spec_of(new) != _spec_of(old):
        meta["generation"] = int(old_meta.get("generation", 1)) + 1


def metadata_causes(meta: Object) -> list[Cause]:
    """What is wrong with a name and the label and annotation maps (nothing: an empty list)."""
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
    return causes
