"""The columns ``kubectl get`` shows for the built-in kinds, computed as kubectl's printers do.

The real server prints built-in kinds with Go code of its own (``pkg/printers/internalversion``);
these are the same columns and cells for the kinds served here: a Pod's Ready/Status/Restarts, a
Node's Status/Roles, a Service's Type/Cluster-IP/External-IP/Port(s), a Deployment's
Ready/Up-to-date/Available, a binding's Role... Columns of priority 1 show with ``-o wide``.
``tables.py`` makes the Table from them (and from a CRD's ``additionalPrinterColumns``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

__all__ = ["BUILTIN_PRINTERS", "Printer", "age", "human_duration", "object_meta"]

Object = dict[str, Any]


def human_duration(seconds: float) -> str:
    """Kubernetes' ``duration.HumanDuration`` (``5m``, ``3h2m``, ``4d``)."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        rest = s % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if days == 0 else f"{hours // 24 // 365}y{days}d"
    return f"{hours // 24 // 365}y"


def age(timestamp: object) -> str:
    if not isinstance(timestamp, str) or not timestamp:
        return "<unknown>"
    try:
        then = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return "<invalid>"
    return human_duration((datetime.now(UTC) - then).total_seconds())


# (name, type[, priority]) per column, and the function computing a row's cells
Printer = tuple[list[tuple[Any, ...]], Callable[[Object], list[Any]]]


def object_meta(obj: Object) -> Object:
    """An object's metadata (``{}`` when it has none)."""
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _node_row(obj: Object) -> list[Any]:
    conditions = obj.get("status", {}).get("conditions") or []
    ready = next((c for c in conditions if isinstance(c, dict) and c.get("type") == "Ready"), None)
    status = "Unknown"
    if ready is not None:
        status = "Ready" if ready.get("status") == "True" else "NotReady"
    if obj.get("spec", {}).get("unschedulable"):
        status += ",SchedulingDisabled"
    roles = sorted(
        key.split("/", 1)[1]
        for key in (object_meta(obj).get("labels") or {})
        if key.startswith("node-role.kubernetes.io/")
    )
    version = obj.get("status", {}).get("nodeInfo", {}).get("kubeletVersion", "")
    return [status, ",".join(roles) or "<none>", age(object_meta(obj).get("creationTimestamp")), version]


def _pod_status(obj: Object, statuses: list[Any]) -> str:
    """kubectl's STATUS: the phase, or what a container is waiting for or ended with (printPod)."""
    status = obj.get("status", {})
    reason = str(status.get("reason") or status.get("phase") or "Pending")
    running = False
    for container in reversed(statuses):
        state = container.get("state") or {}
        waiting, terminated = state.get("waiting") or {}, state.get("terminated")
        if waiting.get("reason"):
            reason = str(waiting["reason"])
        elif isinstance(terminated, dict) and terminated.get("reason"):
            reason = str(terminated["reason"])
        elif isinstance(terminated, dict):
            signal = terminated.get("signal")
            reason = f"Signal:{signal}" if signal else f"ExitCode:{terminated.get('exitCode', 0)}"
        elif container.get("ready") and "running" in state:
            running = True
    if reason == "Completed" and running:
        conditions = status.get("conditions") or []
        ready = any(
            isinstance(c, dict) and c.get("type") == "Ready" and c.get("status") == "True" for c in conditions
        )
        reason = "Running" if ready else "NotReady"
    if object_meta(obj).get("deletionTimestamp"):
        reason = "Terminating"
    return reason


def _pod_row(obj: Object) -> list[Any]:
    spec_containers = obj.get("spec", {}).get("containers") or []
    statuses = [s for s in obj.get("status", {}).get("containerStatuses") or [] if isinstance(s, dict)]
    ready = sum(1 for s in statuses if s.get("ready"))
    restarts = sum(int(s.get("restartCount", 0)) for s in statuses)
    return [
        f"{ready}/{len(spec_containers)}",
        _pod_status(obj, statuses),
        restarts,
        age(object_meta(obj).get("creationTimestamp")),
        obj.get("status", {}).get("podIP") or "<none>",
        obj.get("spec", {}).get("nodeName") or "<none>",
    ]


def _event_row(obj: Object) -> list[Any]:
    involved = obj.get("involvedObject") or {}
    last = obj.get("lastTimestamp") or obj.get("eventTime") or object_meta(obj).get("creationTimestamp")
    return [
        age(last),
        obj.get("type", ""),
        obj.get("reason", ""),
        f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}",
        obj.get("message", ""),
    ]


def _service_external_ip(spec: Object, status: Object) -> str:
    """kubectl's EXTERNAL-IP: the load balancer's addresses, ``<pending>`` until it has some."""
    kind = spec.get("type", "ClusterIP")
    external = [str(ip) for ip in spec.get("externalIPs") or []]
    if kind == "ExternalName":
        return str(spec.get("externalName", ""))
    if kind == "LoadBalancer":
        ingress = (status.get("loadBalancer") or {}).get("ingress") or []
        found = [str(i.get("ip") or i.get("hostname")) for i in ingress if isinstance(i, dict)]
        return ",".join(found + external) or "<pending>"
    return ",".join(external) or "<none>"


def _service_row(obj: Object) -> list[Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    ports = [
        f"{p.get('port')}:{p['nodePort']}/{p.get('protocol', 'TCP')}"
        if p.get("nodePort")
        else f"{p.get('port')}/{p.get('protocol', 'TCP')}"
        for p in spec.get("ports") or []
        if isinstance(p, dict)
    ]
    selector = spec.get("selector") or {}
    return [
        spec.get("type", "ClusterIP"),
        spec.get("clusterIP") or "<none>",
        _service_external_ip(spec, status),
        ",".join(ports) or "<none>",
        age(object_meta(obj).get("creationTimestamp")),
        ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or "<none>",
    ]


def _label_selector_text(selector: Object) -> str:
    """``metav1.FormatLabelSelector``: ``app=x,tier in (a,b)``."""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key", ""), expression.get("operator", "")
        values = ",".join(sorted(str(v) for v in expression.get("values") or []))
        words = {"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})"}
        parts.append(words.get(operator, key if operator == "Exists" else f"!{key}"))
    return ",".join(parts) or "<none>"


def _deployment_row(obj: Object) -> list[Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    containers = [
        c
        for c in ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
        if isinstance(c, dict)
    ]
    return [
        f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
        status.get("updatedReplicas", 0),
        status.get("availableReplicas", 0),
        age(object_meta(obj).get("creationTimestamp")),
        ",".join(str(c.get("name", "")) for c in containers),
        ",".join(str(c.get("image", "")) for c in containers),
        _label_selector_text(spec.get("selector") or {}),
    ]


def _binding_row(obj: Object) -> list[Any]:
    ref = obj.get("roleRef") or {}
    subjects = [s for s in obj.get("subjects") or [] if isinstance(s, dict)]

    def named(kind: str) -> str:
        return ",".join(
            f"{s.get('namespace', '')}/{s.get('name', '')}"
            if kind == "ServiceAccount"
            else str(s.get("name", ""))
            for s in subjects
            if s.get("kind") == kind
        )

    return [
        f"{ref.get('kind', '')}/{ref.get('name', '')}",
        age(object_meta(obj).get("creationTimestamp")),
        named("User"),
        named("Group"),
        named("ServiceAccount"),
    ]


_CREATED_AT: Printer = ([("Created At", "date")], lambda o: [object_meta(o).get("creationTimestamp", "")])
_BINDING: Printer = (
    [
        ("Role", "string"),
        ("Age", "string"),
        ("Users", "string", 1),
        ("Groups", "string", 1),
        ("ServiceAccounts", "string", 1),
    ],
    _binding_row,
)


BUILTIN_PRINTERS: dict[str, Printer] = {
    "namespaces": (
        [("Status", "string"), ("Age", "string")],
        lambda o: [o.get("status", {}).get("phase", "Active"), age(object_meta(o).get("creationTimestamp"))],
    ),
    "nodes": (
        [("Status", "string"), ("Roles", "string"), ("Age", "string"), ("Version", "string")],
        _node_row,
    ),
    "pods": (
        [
            ("Ready", "string"),
            ("Status", "string"),
            ("Restarts", "integer"),
            ("Age", "string"),
            ("IP", "string", 1),
            ("Node", "string", 1),
        ],
        _pod_row,
    ),
    "events": (
        [
            ("Last Seen", "string"),
            ("Type", "string"),
            ("Reason", "string"),
            ("Object", "string"),
            ("Message", "string"),
        ],
        _event_row,
    ),
    "configmaps": (
        [("Data", "integer"), ("Age", "string")],
        lambda o: [
            len(o.get("data") or {}) + len(o.get("binaryData") or {}),
            age(object_meta(o).get("creationTimestamp")),
        ],
    ),
    "secrets": (
        [("Type", "string"), ("Data", "integer"), ("Age", "string")],
        lambda o: [
            o.get("type", "Opaque"),
            len(o.get("data") or {}),
            age(object_meta(o).get("creationTimestamp")),
        ],
    ),
    "leases": (
        [("Holder", "string"), ("Age", "string")],
        lambda o: [o.get("spec", {}).get("holderIdentity", ""), age(object_meta(o).get("creationTimestamp"))],
    ),
    "services": (
        [
            ("Type", "string"),
            ("Cluster-IP", "string"),
            ("External-IP", "string"),
            ("Port(s)", "string"),
            ("Age", "string"),
            ("Selector", "string", 1),
        ],
        _service_row,
    ),
    "deployments": (
        [
            ("Ready", "string"),
            ("Up-to-date", "integer"),
            ("Available", "integer"),
            ("Age", "string"),
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        _deployment_row,
    ),
    "serviceaccounts": (
        [("Secrets", "integer"), ("Age", "string")],
        lambda o: [len(o.get("secrets") or []), age(object_meta(o).get("creationTimestamp"))],
    ),
    "clusterroles": _CREATED_AT,
    "roles": _CREATED_AT,
    "clusterrolebindings": _BINDING,
    "rolebindings": _BINDING,
    "customresourcedefinitions": _CREATED_AT,
}
