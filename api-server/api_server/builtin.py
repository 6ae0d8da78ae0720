"""The built-in Kubernetes types the rest of edgetwin (and kubectl) needs from the server.

Namespaces, Nodes, Pods, Events, ConfigMaps, Secrets, ServiceAccounts, Leases and
CustomResourceDefinitions for edgetwin itself; Services (``kubectl cluster-info``), Deployments and
RBAC for the manifests that deploy edgetwin on a cluster (``cloud-sync/deploy/``), stored and
served without controllers. Their bodies are stored as given (no Go-struct schema here): the server
adds metadata, keeps status behind ``/status`` where the real server does, and prints the columns
``kubectl get`` shows for them. What the server does to some kinds' bodies on a write (a new
Namespace is ``Active``, a new Pod ``Pending``, a Secret's ``stringData`` is folded into ``data``,
a Service gets its cluster IP) and what it refuses in them is dispatched from here to the kind's
module (``services``, ``workloads``, ``rbac``), as is how long a deleted pod is given to stop
(``deletion_grace``).
"""

from __future__ import annotations

import base64
from typing import Any

from api_server.errors import Cause, Invalid
from api_server.rbac import RBAC_GROUP, binding_causes, prepare_binding, role_causes
from api_server.resources import ResourceType
from api_server.services import prepare_service, service_causes, update_service
from api_server.storage import Store
from api_server.workloads import deployment_causes, prepare_deployment

__all__ = [
    "BUILTIN_TYPES",
    "CRD_TYPE",
    "DEFAULT_NAMESPACES",
    "EVENT_TYPE",
    "NAMESPACE_TYPE",
    "check_write",
    "deletion_grace",
    "normalize",
    "prepare_new",
    "prepare_update",
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
    ResourceType(
        group="",
        version="v1",
        plural="services",
        singular="service",
        kind="Service",
        namespaced=True,
        short_names=("svc",),
        categories=("all",),
        status_subresource=True,
    ),
    ResourceType(
        group="apps",
        version="v1",
        plural="deployments",
        singular="deployment",
        kind="Deployment",
        namespaced=True,
        short_names=("deploy",),
        categories=("all",),
        status_subresource=True,
    ),
    *(
        ResourceType(
            group=RBAC_GROUP,
            version="v1",
            plural=f"{kind.lower()}s",
            singular=kind.lower(),
            kind=kind,
            namespaced=not kind.startswith("Cluster"),
        )
        for kind in ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
    ),
)

_SERVICES = "services"
_DEPLOYMENTS = "apps/deployments"
_ROLES = {f"{RBAC_GROUP}/clusterroles": False, f"{RBAC_GROUP}/roles": True}
_BINDINGS = {f"{RBAC_GROUP}/clusterrolebindings": False, f"{RBAC_GROUP}/rolebindings": True}

DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def prepare_new(rtype: ResourceType, obj: Object, store: Store) -> None:
    """What some kinds get on create: a new Namespace is ``Active``, a new Pod ``Pending``, a new
    Service its cluster IP, a new Deployment its defaults and an empty status."""
    if rtype.key == NAMESPACE_TYPE.key:
        obj.setdefault("spec", {})
        obj["status"] = {"phase": "Active"}
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
    elif rtype.key == "pods":
        obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
    elif rtype.key == _SERVICES:
        prepare_service(obj, store.items(_SERVICES))
    elif rtype.key == _DEPLOYMENTS:
        prepare_deployment(obj, new=True)


def prepare_update(rtype: ResourceType, old: Object, new: Object, store: Store) -> None:
    """What some kinds get on update: a Service keeps what was allocated to it, a Deployment its
    defaults; then what every write gets (``normalize``)."""
    if rtype.key == _SERVICES:
        update_service(old, new, store.items(_SERVICES))
    elif rtype.key == _DEPLOYMENTS:
        prepare_deployment(new, new=False)
    normalize(rtype, new)


def check_write(rtype: ResourceType, obj: Object, store: Store, old: Object | None) -> None:
    """422 ``Invalid``, naming every field, for what the real server refuses in a built-in kind's
    body (``old``: the stored one, on an update)."""
    causes = _kind_causes(rtype, obj, store, old)
    if causes:
        raise Invalid(rtype.kind, rtype.group, str(obj["metadata"].get("name", "")), causes)


def _kind_causes(rtype: ResourceType, obj: Object, store: Store, old: Object | None) -> list[Cause]:
    if rtype.key == _SERVICES:
        return service_causes(obj, store.items(_SERVICES), old)
    if rtype.key == _DEPLOYMENTS:
        return deployment_causes(obj, old)
    if rtype.key in _ROLES:
        return role_causes(obj, namespaced=_ROLES[rtype.key])
    if rtype.key in _BINDINGS:
        return binding_causes(obj, old, namespaced=_BINDINGS[rtype.key])
    return []


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
    elif rtype.key in _BINDINGS:
        prepare_binding(obj)


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
