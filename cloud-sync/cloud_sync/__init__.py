"""The Kubernetes side of edgetwin: Device CRDs mirrored to edge twins and back, edge Nodes.

cloud-sync talks to any Kubernetes API through the ``kubernetes`` client (``KubeApi``: a
kubeconfig, or the pod's service account) and to the edge nodes over the cloud link, MQTT on a
cloud broker (docs/cloud-link.md, ``twin.link``), and carries the pods bound to edge nodes to them
(``CloudSync.pods``: their status back, their logs on request). ``CloudSync`` runs it; ``AccessFiles`` keeps
the join token and the broker's password file and ACL. The embedded API server for single
machines is its own package (``api_server``), which cloud-sync never imports. docs/cloud-sync.md
is the user's guide.
"""

from cloud_sync.access import CLOUD_USER, AccessFiles, BrokerReload, BrokerReloadFailed, reload_command
from cloud_sync.errors import (
    ApiConflict,
    ApiError,
    ApiGone,
    ApiNotFound,
    ApiRefused,
    ApiUnavailable,
    InvalidKubeconfig,
)
from cloud_sync.kube import KubeApi, in_cluster
from cloud_sync.pod_logs import LogQuery
from cloud_sync.service import CloudSync, CloudSyncSettings

__all__ = [
    "CLOUD_USER",
    "AccessFiles",
    "ApiConflict",
    "ApiError",
    "ApiGone",
    "ApiNotFound",
    "ApiRefused",
    "ApiUnavailable",
    "BrokerReload",
    "BrokerReloadFailed",
    "CloudSync",
    "CloudSyncSettings",
    "InvalidKubeconfig",
    "KubeApi",
    "LogQuery",
    "in_cluster",
    "reload_command",
]
