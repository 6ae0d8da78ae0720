"""The ``kubernetes`` client as cloud-sync sets it up: a connection per worker and watch, and the
token refresh hook it runs before every request run at most once a second."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cloud_sync.kube import WATCHES, KubeApi, at_most_every
from tests.fixtures.apiserver import ApiServerThread


class Configuration:
    refresh_api_key_hook: Any = None


def test_the_refresh_hook_runs_at_most_once_per_interval_and_stays_throttled() -> None:
    now = [0.0]
    runs: list[float] = []
    configuration = Configuration()

    def refresh(config: Any) -> None:
        runs.append(now[0])
        config.refresh_api_key_hook = refresh  # as the client's own hook does, each time

    configuration.refresh_api_key_hook = at_most_every(1.0, refresh, clock=lambda: now[0])
    for step in range(25):
        now[0] = step * 0.1
        configuration.refresh_api_key_hook(configuration)
    assert runs == [0.0, 1.0, 2.0]


async def test_requests_get_a_pooled_connection_each_and_still_authenticate(
    module_apiserver_with_crds: ApiServerThread,
) -> None:
    api = KubeApi.from_config(Path(module_apiserver_with_crds.kubeconfig), workers=12)
    try:
        assert api._client.configuration.connection_pool_maxsize == 12 + WATCHES
        for _ in range(3):
            listed = await api.get("/api/v1/namespaces")
            assert listed["kind"] == "NamespaceList"
    finally:
        await api.aclose()
