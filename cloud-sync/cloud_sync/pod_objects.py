"""Pods as cloud-sync handles them: what a node is sent, the revision of that, and the status written back.

Pure functions, no I/O:

* ``references``: the ConfigMaps and Secrets a pod names (volumes, projected sources, ``env``
  ``valueFrom``, ``envFrom``), which travel with it so that the node can start it offline;
* ``assignment``: the ``PodAssignment`` a node gets: the pod without ``status``,
  ``metadata.managedFields`` and ``resourceVersion`` (so that a status write changes nothing a
  node is sent), the referenced objects that exist, and a ``revision`` that changes exactly when
  one of those does;
* ``status_patch``: the node's report made the body of a merge patch of the pod's status: the
  fields the node owns replaced (or removed when it no longer reports them), conditions of other
  types kept, a condition's ``lastTransitionTime`` kept while its status does not change.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterator, Mapping
from typing import Any

import orjson

from cloud_sync.kube import Obj
from twin.link_pods import PodAssignment

__all__ = [
    "NODE_STATUS_FIELDS",
    "assignment",
    "is_terminating",
    "node_of",
    "pod_key",
    "references",
    "status_patch",
    "uid_of",
]

#: The status fields the node writes; one it stops reporting is removed.
NODE_STATUS_FIELDS = (
    "phase",
    "reason",
    "message",
    "hostIP",
    "hostIPs",
    "podIP",
    "podIPs",
    "startTime",
    "containerStatuses",
    "initContainerStatuses",
)


def pod_key(obj: Obj) -> str:
    metadata = obj.get("metadata") or {}
    return f"{metadata.get('namespace') or 'default'}/{metadata.get('name')}"


def uid_of(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("uid") or "")


def node_of(obj: Obj) -> str:
    node = (obj.get("spec") or {}).get("nodeName")
    return node if isinstance(node, str) else ""


def is_terminating(obj: Obj) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def _dicts(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, list):
        yield from (item for item in value if isinstance(item, dict))


def references(pod: Obj) -> tuple[set[str], set[str]]:
    """The names of the ConfigMaps and of the Secrets ``pod`` uses (in its own namespace)."""
    config_maps: set[str] = set()
    secrets: set[str] = set()

    def add(target: set[str], name: Any) -> None:
        if isinstance(name, str) and name:
            target.add(name)

    spec = pod.get("spec") or {}
    for volume in _dicts(spec.get("volumes")):
        add(config_maps, (volume.get("configMap") or {}).get("name"))
        add(secrets, (volume.get("secret") or {}).get("secretName"))
        for source in _dicts((volume.get("projected") or {}).get("sources")):
            add(config_maps, (source.get("configMap") or {}).get("name"))
            add(secrets, (source.get("secret") or {}).get("name"))
    for container in [*_dicts(spec.get("containers")), *_dicts(spec.get("initContainers"))]:
        for env in _dicts(container.get("env")):
            source = env.get("valueFrom") or {}
            add(config_maps, (source.get("configMapKeyRef") or {}).get("name"))
            add(secrets, (source.get("secretKeyRef") or {}).get("name"))
        for env_from in _dicts(container.get("envFrom")):
            add(config_maps, (env_from.get("configMapRef") or {}).get("name"))
            add(secrets, (env_from.get("secretRef") or {}).get("name"))
    return config_maps, secrets


def _sendable(obj: Obj) -> Obj:
    """``obj`` without what only the API server cares about (and what status writes change)."""
    sent = {key: value for key, value in obj.items() if key != "status"}
    metadata = {
        key: value
        for key, value in (obj.get("metadata") or {}).items()
        if key not in ("managedFields", "resourceVersion")
    }
    sent["metadata"] = metadata
    return sent


def assignment(pod: Obj, config_maps: Mapping[str, Obj], secrets: Mapping[str, Obj]) -> PodAssignment:
    """What the pod's node is sent; ``config_maps``/``secrets`` by ``namespace/name``, as watched."""
    namespace = (pod.get("metadata") or {}).get("namespace") or "default"
    wanted_maps, wanted_secrets = references(pod)
    maps = {
        n: _sendable(config_maps[f"{namespace}/{n}"])
        for n in sorted(wanted_maps)
        if f"{namespace}/{n}" in config_maps
    }
    keys = {
        n: _sendable(secrets[f"{namespace}/{n}"])
        for n in sorted(wanted_secrets)
        if f"{namespace}/{n}" in secrets
    }
    body = _sendable(pod)
    digest = hashlib.sha256(orjson.dumps([body, maps, keys], option=orjson.OPT_SORT_KEYS)).hexdigest()
    return PodAssignment(pod=body, config_maps=maps, secrets=keys, revision=digest[:20])


def status_patch(current: Mapping[str, Any] | None, reported: Mapping[str, Any]) -> dict[str, Any] | None:
    """The merge-patch ``status`` that makes ``current`` say what the node ``reported``; ``None``
    when it says so already."""
    current = current or {}
    patch: dict[str, Any] = {}
    for field in NODE_STATUS_FIELDS:
        if field in reported:
            if current.get(field) != reported[field]:
                patch[field] = copy.deepcopy(reported[field])
        elif field in current:
            patch[field] = None  # no longer true: removed
    before = {c.get("type"): c for c in _dicts(current.get("conditions"))}
    conditions = []
    for condition in _dicts(reported.get("conditions")):
        merged = dict(condition)
        old = before.pop(condition.get("type"), None)
        if old is not None and old.get("status") == condition.get("status") and old.get("lastTransitionTime"):
            merged["lastTransitionTime"] = old["lastTransitionTime"]
        conditions.append(merged)
    conditions += before.values()  # types the node does not manage (a readiness gate's, a controller's)
    if conditions != list(_dicts(current.get("conditions"))):
        patch["conditions"] = conditions
    return patch or None
