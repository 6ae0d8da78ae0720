"""The built-in Kubernetes types the rest of edgetwin (and kubectl) needs from the server.

Namespaces, Nodes, Pods, Events, ConfigMaps, Secrets, Leases and CustomResourceDefinitions. Their
bodies are stored as given (no Go-struct schema here): the server adds metadata, keeps status behind
``/status`` where the real server does, and prints the columns ``kubectl get`` shows for them.
What the server does to some kinds' bodies on a write (a new Namespace is ``Active``, a new Pod
``Pending``, a Secret's ``stringData`` is folded into ``data``) is here too, beside the kinds, and
how long a deleted pod is given to stop (``deletion_grace``).
"""

from __future__ import annotations

import base64
from typing import Any

from api_server.resources import ResourceType

__all__ = [
    "BUILTIN_TYPES",
    "CRD_TYPE",
    "DEFAULT_NAMESPACES",
    "EVENT_TYPE",
    "NAMESPACE_TYPE",
    "deletion_grace",
    "normalize",
    "prepare_new",
]

Object = dict[str, Any]

NAMESPACE_TYPE = ResourceType(
    group="",
    version="v1",
    plural="namespaces",
    singular="namespace",
    kind="Namespace",
    namespaced=False,
    short_names=("ns",),
    status_subresource=True,
    verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
)
EVENT_TYPE = ResourceType(
    group="",
    version="v1",
    plural="events",
    singular="event",
    kind="Event",
    namespaced=True,
    short_names=("ev",),
)
CRD_TYPE = ResourceType(
    group="apiextensions.k8s.io",
    version="v1",
    plural="customresourcedefinitions",
    singular="customresourcedefinition",
    kind="CustomResourceDefinition",
    namespaced=False,
    short_names=("crd", "crds"),
    categories=("api-extensions",),
    status_subresource=True,
)

BUILTIN_TYPES: tuple[ResourceType, ...] = (
    NAMESPACE_TYPE,
    EVENT_TYPE,
    CRD_TYPE,
    ResourceType(
        group="",
        version="v1",
        plural="nodes",
        singular="node",
        kind="Node",
        namespaced=False,
        short_names=("no",),
        status_subresource=True,
    ),
    ResourceType(
        group="",
        version="v1",
        plural="pods",
        singular="pod",
        kind="Pod",
        namespaced=True,
        short_names=("po",),
        categories=("all",),
        status_subresource=True,
        subresources=("binding", "log"),
    ),
    ResourceType(
        group="",
        version="v1",
        plural="configmaps",
        singular="configmap",
        kind="ConfigMap",
        namespaced=True,
        short_names=("cm",),
    ),
    ResourceType(
        group="",
        version="v1",
        plural="secrets",
        singular="secret",
        kind="Secret",
        namespaced=True,
    ),
    ResourceType(
        group="",
        version="v1",
        plural="serviceaccounts",
        singular="serviceaccount",
        kind="ServiceAccount",
        namespaced=True,
        short_names=("sa",),
    ),
    ResourceType(
        group="coordination.k8s.io",
        version="v1",
        plural="leases",
        singular="lease",
        kind="Lease",
        namespaced=True,
    ),
)

DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def prepare_new(rtype: ResourceType, obj: Object) -> None:
    """What some kinds get on create: a new Namespace is ``Active``, a new Pod ``Pending``."""
    if rtype.key == NAMESPACE_TYPE.key:
        obj.setdefault("spec", {})
        obj["status"] = {"phase": "Active"}
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
    elif rtype.key == "pods":
        obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}


def normalize(rtype: ResourceType, obj: Object) -> None:
    """What the real server does to some built-in bodies on every write."""
    if rtype.key == "secrets":
        string_data = obj.pop("stringData", None)
        if isinstance(string_data, dict):
            data = obj.setdefault("data", {})
            for key, value in string_data.items():
                data[key] = base64.b64encode(str(value).encode()).decode()
        obj.setdefault("type", "Opaque")
    elif rtype.key == NAMESPACE_TYPE.key and not isinstance(obj.get("status"), dict):
        obj["status"] = {"phase": "Active"}


def deletion_grace(rtype: ResourceType, obj: Object, options: Object | None) -> int:
    """Seconds a deleted object is kept (``deletionTimestamp`` set) before it goes: 0 but for a pod
    bound to a node and not finished, which its node stops first (the real server's graceful
    deletion: ``gracePeriodSeconds`` of the request, else the pod's ``terminationGracePeriodSeconds``).
    """
    if rtype.key != "pods":
        return 0
    spec = obj.get("spec") or {}
    if not spec.get("nodeName") or (obj.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return 0
    grace = (options or {}).get("gracePeriodSeconds")
    if not isinstance(grace, int) or isinstance(grace, bool):
        grace = spec.get("terminationGracePeriodSeconds", 30)
    return max(0, grace) if isinstance(grace, int) and not isinstance(grace, bool) else 30
