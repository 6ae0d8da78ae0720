"""The gateway agent: hosts one edge node's twin service and in-process mappers (``Gateway``).

The edge end of the cloud link, the offline outbox, the pod runtime and the DMI server join the
same host as they are built (DESIGN.md §6, §9).
"""

from node_agent.gateway import Gateway, GatewaySettings
from node_agent.supervision import PieceFailed, RestartPolicy, supervise

__all__ = ["Gateway", "GatewaySettings", "PieceFailed", "RestartPolicy", "supervise"]
