"""The Kubernetes side of edgetwin: Device CRDs mirrored to edge twins and back, edge Nodes, pods.

It talks to any Kubernetes API through the ``kubernetes`` client. The embedded API server for
single machines is its own package (``api_server``), which cloud-sync never imports.
"""
