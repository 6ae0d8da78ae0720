"""The ``v1 Node`` and ``coordination.k8s.io/v1 Lease`` of an edge node, as the kubelet writes them.

Pure builders, no I/O. A node's Node is labelled ``node-role.kubernetes.io/edge: ""`` (KubeEdge's)
and ``kubernetes.io/hostname``, carries the addresses, node info and capacity of its heartbeats,
and a ``Ready`` condition: ``True`` (reason ``EdgeNodeReady``) while heartbeats arrive, ``Unknown``
(reason ``NodeStatusUnknown``, as the node lifecycle controller writes it) when they stop. Its
Lease in ``kube-node-lease`` is renewed at every heartbeat, as the kubelet renews its own; a real
cluster's node lifecycle controller watches it.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from cloud_sync.kube import Obj
from cloud_sync.resources import EDGE_LABEL, LEASE_NAMESPACE
from twin.link import Heartbeat

__all__ = [
    "lease_body",
    "lease_renewal",
    "micro_time",
    "node_body",
    "not_ready_status",
    "parse_time",
    "ready_condition",
    "ready_status",
    "status_is_current",
]

READY_REASON = "EdgeNodeReady"
NOT_READY_REASON = "NodeStatusUnknown"


def rfc3339(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_time(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: object) -> float | None:
    """Seconds since the epoch of an RFC 3339 time (``…Z`` or with an offset); ``None`` if unreadable."""
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def ready_condition(obj: Obj | None) -> dict[str, Any] | None:
    for condition in ((obj or {}).get("status") or {}).get("conditions") or []:
        if isinstance(condition, dict) and condition.get("type") == "Ready":
            return condition
    return None


def _facts(name: str, heartbeat: Heartbeat) -> dict[str, Any]:
    addresses = [a.model_dump() for a in heartbeat.addresses] or [{"type": "Hostname", "address": name}]
    return {
        "addresses": addresses,
        "nodeInfo": heartbeat.node_info.model_dump(),
        "capacity": dict(heartbeat.capacity),
        "allocatable": dict(heartbeat.capacity),
    }


def ready_status(name: str, heartbeat: Heartbeat, current: Obj | None, now: float) -> dict[str, Any]:
    """The Node's status after a heartbeat: the heartbeat's facts, and ``Ready`` = ``True``."""
    status: dict[str, Any] = copy.deepcopy((current or {}).get("status") or {})
    status.update(_facts(name, heartbeat))
    before = ready_condition(current)
    ready = {
        "type": "Ready",
        "status": "True",
        "reason": READY_REASON,
        "message": "the edgetwin node agent is posting heartbeats",
        "lastHeartbeatTime": rfc3339(now),
        "lastTransitionTime": (
            before.get("lastTransitionTime", rfc3339(now))
            if before is not None and before.get("status") == "True"
            else rfc3339(now)
        ),
    }
    others = [c for c in status.get("conditions") or [] if isinstance(c, dict) and c.get("type") != "Ready"]
    status["conditions"] = [*others, ready]
    return status


def status_is_current(
    name: str, heartbeat: Heartbeat, current: Obj | None, now: float, interval: float
) -> bool:
    """Whether the Node needs no status write for this heartbeat (Ready, same facts, recent)."""
    ready = ready_condition(current)
    if current is None or ready is None or ready.get("status") != "True":
        return False
    status = current.get("status") or {}
    if any(status.get(key) != value for key, value in _facts(name, heartbeat).items()):
        return False
    last = parse_time(ready.get("lastHeartbeatTime"))
    return last is not None and now - last < interval


def not_ready_status(current: Obj, message: str, now: float) -> dict[str, Any]:
    status: dict[str, Any] = copy.deepcopy(current.get("status") or {})
    before = ready_condition(current) or {}
    unknown = {
        "type": "Ready",
        "status": "Unknown",
        "reason": NOT_READY_REASON,
        "message": message,
        "lastHeartbeatTime": before.get("lastHeartbeatTime", rfc3339(now)),
        "lastTransitionTime": rfc3339(now),
    }
    others = [c for c in status.get("conditions") or [] if isinstance(c, dict) and c.get("type") != "Ready"]
    status["conditions"] = [*others, unknown]
    return status


def node_body(name: str, heartbeat: Heartbeat, now: float) -> Obj:
    labels = {EDGE_LABEL: "", "kubernetes.io/hostname": name}
    info = heartbeat.node_info
    if info.operatingSystem:
        labels["kubernetes.io/os"] = info.operatingSystem
    if info.architecture:
        labels["kubernetes.io/arch"] = info.architecture
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": {},
        "status": ready_status(name, heartbeat, None, now),
    }


def lease_renewal(name: str, grace: float, now: float) -> dict[str, Any]:
    return {
        "spec": {
            "holderIdentity": name,
            "leaseDurationSeconds": max(1, round(grace)),
            "renewTime": micro_time(now),
        }
    }


def lease_body(name: str, grace: float, now: float, node_uid: str | None) -> Obj:
    metadata: dict[str, Any] = {"name": name, "namespace": LEASE_NAMESPACE}
    if node_uid:
        metadata["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": name, "uid": node_uid}]
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": metadata,
        **lease_renewal(name, grace, now),
    }
