"""Pods on the gateway: the node agent's pod runtime and supervisor (DESIGN.md §9, docs/pods.md).

The cloud link hands ``PodManager`` the pods bound to this node (``BoundPod``: a v1 Pod with the
ConfigMaps and Secrets it names); the manager stores them, runs them through a runtime
(``process``: local processes, the default; ``podman``: containers with runc), restarts them per
``restartPolicy`` with Kubernetes' back-off, probes them, and reports each pod's ``PodStatus``
(Kubernetes' shape) and its containers' logs.
"""

from node_agent.pods.clock import BackOff, PodClock
from node_agent.pods.errors import (
    ContainerConfigFailed,
    ContainerCreateFailed,
    ContainerStartFailed,
    ImagePullFailed,
    PodError,
    PodRejected,
    RuntimeUnavailable,
)
from node_agent.pods.manager import PodManager, PodSettings, StatusListener, make_runtime
from node_agent.pods.podman import PodmanRuntime, PodmanSettings
from node_agent.pods.process import ProcessRuntime
from node_agent.pods.runtime import ContainerRuntime
from node_agent.pods.spec import BoundPod, ConfigMap, Pod, Secret
from node_agent.pods.status import PodStatus

__all__ = [
    "BackOff",
    "BoundPod",
    "ConfigMap",
    "ContainerConfigFailed",
    "ContainerCreateFailed",
    "ContainerRuntime",
    "ContainerStartFailed",
    "ImagePullFailed",
    "Pod",
    "PodClock",
    "PodError",
    "PodManager",
    "PodRejected",
    "PodSettings",
    "PodStatus",
    "PodmanRuntime",
    "PodmanSettings",
    "ProcessRuntime",
    "RuntimeUnavailable",
    "Secret",
    "StatusListener",
    "make_runtime",
]
