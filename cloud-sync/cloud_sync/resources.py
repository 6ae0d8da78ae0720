"""The Kubernetes resources cloud-sync reads and writes, and their REST paths.

Paths are built here and nowhere else, the way ``kubectl`` and client-go address any kind: a group,
a version, a plural, optionally a namespace, a name and a subresource.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

__all__ = [
    "CONFIG_MAPS",
    "DEVICES",
    "DEVICE_MODELS",
    "EDGE_LABEL",
    "EVENTS",
    "LEASES",
    "LEASE_NAMESPACE",
    "NODES",
    "PODS",
    "SECRETS",
    "Resource",
]

#: The label that marks a Node as an edge node (KubeEdge's).
EDGE_LABEL = "node-role.kubernetes.io/edge"
#: Where node Leases live (as the kubelet's).
LEASE_NAMESPACE = "kube-node-lease"


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(
        self, namespace: str | None = None, name: str | None = None, subresource: str | None = None
    ) -> str:
        """``/apis/G/V[/namespaces/NS]/PLURAL[/NAME[/SUB]]`` (``/api/v1/...`` for the core group)."""
        root = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace is not None:
            root += f"/namespaces/{quote(namespace, safe='')}"
        root += f"/{self.plural}"
        if name is not None:
            root += f"/{quote(name, safe='')}"
            if subresource is not None:
                root += f"/{subresource}"
        return root


DEVICES = Resource("devices.kubeedge.io", "v1beta1", "devices", "Device")
DEVICE_MODELS = Resource("devices.kubeedge.io", "v1beta1", "devicemodels", "DeviceModel")
NODES = Resource("", "v1", "nodes", "Node", namespaced=False)
LEASES = Resource("coordination.k8s.io", "v1", "leases", "Lease")
EVENTS = Resource("", "v1", "events", "Event")
PODS = Resource("", "v1", "pods", "Pod")
CONFIG_MAPS = Resource("", "v1", "configmaps", "ConfigMap")
SECRETS = Resource("", "v1", "secrets", "Secret")
