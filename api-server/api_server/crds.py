"""CustomResourceDefinitions: their defaults and status, and serving their resources.

A CRD's resources are served from the moment it is stored (its status says ``Established`` at
once: there is nothing to wait for here) until it is deleted, which deletes its objects too. The
shipped CRDs (``crds/``) are compared with stored ones through ``normalize_crd_spec``.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from api_server.meta import now_timestamp
from api_server.resources import Registry, validate_crd
from api_server.storage import Store, copy_object

__all__ = ["normalize_crd_spec", "serve_crd", "set_crd_status", "stop_serving_crd"]

log = logging.getLogger(__name__)

Object = dict[str, Any]


def normalize_crd_spec(spec: Object) -> Object:
    """A (valid) CRD spec with the defaults the server fills in: singular, listKind, served."""
    result = copy.deepcopy(spec)
    names = result["names"]
    names.setdefault("singular", str(names["kind"]).lower())
    names.setdefault("listKind", f"{names['kind']}List")
    for version in result["versions"]:
        version.setdefault("served", True)
    return result


def set_crd_status(crd: Object) -> None:
    """Check a CRD, fill in its spec's defaults and give it the status of an established one."""
    validate_crd(crd)
    spec = crd["spec"] = normalize_crd_spec(crd["spec"])
    stamp = now_timestamp()
    old = crd.get("status") if isinstance(crd.get("status"), dict) else {}
    assert isinstance(old, dict)
    stored = list(old.get("storedVersions") or [])
    for version in spec["versions"]:
        if version.get("storage") and version["name"] not in stored:
            stored.append(version["name"])
    crd["status"] = {
        "acceptedNames": spec["names"],
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


def serve_crd(registry: Registry, crd: Object) -> None:
    registry.add_crd(crd)
    log.info("serving %s", crd["metadata"]["name"])


def stop_serving_crd(registry: Registry, store: Store, crd: Object) -> None:
    """Stop serving a deleted CRD's resources and delete its objects."""
    name = str(crd["metadata"]["name"])
    crd_types = registry.by_key(f"{crd['spec']['group']}/{crd['spec']['names']['plural']}")
    registry.remove_crd(name)
    if crd_types:
        for doomed in list(store.items(crd_types[0].key)):
            store.write(crd_types[0].key, copy_object(doomed), "DELETED")
    log.info("no longer serving %s", name)
