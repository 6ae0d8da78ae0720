"""The embedded Kubernetes-compatible API server (DESIGN.md §7).

A single-machine stand-in for kube-apiserver that real ``kubectl`` and the ``kubernetes`` client
accept: discovery, OpenAPI v3, CRDs with schema validation, CRUD with merge/JSON patch, list and
watch by resourceVersion, persisted in sqlite under a private data directory. Start it with
``serve()``. It imports nothing of edgetwin; only the composition root (``edgetwin/``) wires it,
and cloud-sync talks to it as to any Kubernetes API.
"""

from api_server.errors import ApiError
from api_server.pod_log import LogOptions, PodLogs
from api_server.server import ApiServer, ApiServerError, load_crd_manifests, serve
from api_server.watch import WatchLimits

__all__ = [
    "ApiError",
    "ApiServer",
    "ApiServerError",
    "LogOptions",
    "PodLogs",
    "WatchLimits",
    "load_crd_manifests",
    "serve",
]
