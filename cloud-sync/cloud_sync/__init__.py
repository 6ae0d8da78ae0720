"""The Kubernetes side of edgetwin.

Today it holds the embedded Kubernetes-compatible API server (``cloud_sync.apiserver``) that real
kubectl and the ``kubernetes`` client accept. Mirroring twins to Device objects, the node registry
and carrying pods to edge nodes (DESIGN.md §6, §7) are planned work.
"""
