"""``edgetwin up``'s waits against a real API server: the Node's readiness."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cloud_sync import KubeApi
from edgetwin.stack import node_ready


def _node(name: str, ready: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name},
        "status": {"conditions": [{"type": "Ready", "status": ready, "reason": "EdgeReady"}]},
    }


async def test_a_node_is_ready_only_once_its_node_says_ready(module_apiserver: Any) -> None:
    api = KubeApi.from_config(Path(module_apiserver.kubeconfig))
    try:
        assert not await node_ready(api, "stack-gw", timeout=0.3)  # no Node yet
        await api.call("POST", "/api/v1/nodes", body=_node("stack-gw", "Unknown"))
        assert not await node_ready(api, "stack-gw", timeout=0.3)
        await api.call("POST", "/api/v1/nodes", body=_node("stack-gw2", "True"))
        assert await node_ready(api, "stack-gw2", timeout=5)
    finally:
        await api.aclose()
