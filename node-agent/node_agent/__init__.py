"""The gateway agent: hosts one edge node's twin service, in-process mappers and cloud link (``Gateway``).

The cloud link (``CloudLink``) is the edge end of docs/cloud-link.md, with its durable outbox; the
pod runtime and the DMI server join the same host as they are built (DESIGN.md §6, §9).
"""

from node_agent.cloud_link import CloudLink, CloudSettings
from node_agent.gateway import Gateway, GatewaySettings, InvalidGatewaySettings
from node_agent.metrics import NodeMetrics
from node_agent.supervision import PieceFailed, RestartPolicy, supervise

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
