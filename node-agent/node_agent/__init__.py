"""The gateway agent: one edge node's twin service, in-process mappers, pods and cloud link (``Gateway``).

The cloud link (``CloudLink``) is the edge end of docs/cloud-link.md, with its durable outbox; the
pods bound to the node (``node_agent.pods``, carried by ``node_agent.pod_link``) and the DMI server
are pieces of the same host (DESIGN.md §6, §9).
``CloudLink`` and ``NodeMetrics`` load on first use: a node's twin serves before they are needed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from node_agent.gateway import Gateway, GatewaySettings, InvalidGatewaySettings
from node_agent.settings import CloudSettings
from node_agent.supervision import PieceFailed, RestartPolicy, supervise

if TYPE_CHECKING:
    from node_agent.cloud_link import CloudLink
    from node_agent.metrics import NodeMetrics

__all__ = [
    "CloudLink",
    "CloudSettings",
    "Gateway",
    "GatewaySettings",
    "InvalidGatewaySettings",
    "NodeMetrics",
    "PieceFailed",
    "RestartPolicy",
    "supervise",
]


def __getattr__(name: str) -> Any:
    if name == "CloudLink":
        from node_agent.cloud_link import CloudLink

        return CloudLink
    if name == "NodeMetrics":
        from node_agent.metrics import NodeMetrics

        return NodeMetrics
    raise AttributeError(f"module 'node_agent' has no attribute {name!r}")
