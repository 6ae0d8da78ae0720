"""Probes on both runtimes: readiness (httpGet) flips Ready both ways, a failing liveness (exec)
probe restarts the container with the reason, a startup probe holds the others back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.fixtures.pods import PodNode
from tests.fixtures.tools import free_port

KEY = "default/web"


def _probe(**handler: Any) -> dict[str, Any]:
    # Pod seconds: SCALE makes periodSeconds 5 a tenth of a second; the timeout leaves room for a
    # slow `podman exec` on a loaded machine.
    return {**handler, "periodSeconds": 5, "timeoutSeconds": 100, "failureThreshold": 2}


async def test_a_readiness_probe_flips_ready_both_ways(pod_node: PodNode, tmp_path: Path) -> None:
    manager = await pod_node.start()
    port = free_port()
    containers: list[dict[str, Any]] = [{"name": "web", "ports": [{"name": "http", "containerPort": port}]}]
    volumes: list[dict[str, Any]] = []
    www = pod_node.control_dir(tmp_path / "www", containers, volumes)
    containers[0]["command"] = ["busybox", "httpd", "-f", "-p", f"127.0.0.1:{port}", "-h", www]
    containers[0]["readinessProbe"] = _probe(httpGet={"path": "/healthz", "port": "http"})
    await manager.put(pod_node.pod("web", containers, volumes=volumes))
    status = await pod_node.pods.wait_for(KEY, lambda s: s.phase == "Running", "Running")
    assert not status.container("web").ready
    (tmp_path / "www" / "healthz").write_text("ok\n")
    status = await pod_node.pods.wait_for(KEY, lambda s: s.condition("Ready").status == "True", "Ready")
    assert status.container("web").ready and status.container("web").restart_count == 0
    (tmp_path / "www" / "healthz").unlink()
    status = await pod_node.pods.wait_for(KEY, lambda s: s.condition("Ready").status == "False", "not Ready")
    assert status.condition("ContainersReady").message == "containers with unready status: [web]"
    assert status.container("web").state.running is not None  # readiness never restarts


async def test_a_failing_liveness_probe_restarts_the_container(pod_node: PodNode, tmp_path: Path) -> None:
    manager = await pod_node.start()
    containers: list[dict[str, Any]] = [{"name": "web"}]
    volumes: list[dict[str, Any]] = []
    ctl = pod_node.control_dir(tmp_path / "ctl", containers, volumes)
    (tmp_path / "ctl" / "alive").touch()
    containers[0]["command"] = ["sh", "-c", "echo serving; exec sleep 1000"]
    containers[0]["livenessProbe"] = _probe(exec={"command": ["test", "-f", f"{ctl}/alive"]})
    await manager.put(pod_node.pod("web", containers, volumes=volumes, terminationGracePeriodSeconds=5))
    await pod_node.pods.wait_for(KEY, lambda s: s.condition("Ready").status == "True", "Ready")
    (tmp_path / "ctl" / "alive").unlink()
    status = await pod_node.pods.wait_for(
        KEY, lambda s: s.container("web").last_state.terminated is not None, "a restart"
    )
    terminated = status.container("web").last_state.terminated
    assert terminated is not None and terminated.message is not None
    assert terminated.message.startswith("liveness probe failed: command ['test', '-f'")
    assert terminated.exit_code in (137, 143)  # sleep dies of SIGTERM, or of SIGKILL after the grace period
    (tmp_path / "ctl" / "alive").touch()
    status = await pod_node.pods.wait_for(
        KEY, lambda s: s.container("web").restart_count == 1 and s.container("web").ready, "running again"
    )
    assert [line async for line in manager.logs(KEY, previous=True)] == [b"serving\n"]


async def test_a_startup_probe_holds_liveness_and_readiness_until_it_succeeds(
    pod_node: PodNode, tmp_path: Path
) -> None:
    manager = await pod_node.start()
    containers: list[dict[str, Any]] = [{"name": "web"}]
    volumes: list[dict[str, Any]] = []
    ctl = pod_node.control_dir(tmp_path / "ctl", containers, volumes)
    containers[0]["command"] = ["sh", "-c", "exec sleep 1000"]
    # Liveness would kill the container at once if it ran before startup succeeded.
    containers[0]["livenessProbe"] = _probe(exec={"command": ["test", "-f", f"{ctl}/never"]})
    containers[0]["startupProbe"] = {
        **_probe(exec={"command": ["test", "-f", f"{ctl}/started"]}),
        "failureThreshold": 1000,
    }
    await manager.put(pod_node.pod("web", containers, volumes=volumes, terminationGracePeriodSeconds=5))
    status = await pod_node.pods.wait_for(KEY, lambda s: s.phase == "Running", "Running")
    assert not status.container("web").started and not status.container("web").ready
    (tmp_path / "ctl" / "started").touch()
    status = await pod_node.pods.wait_for(KEY, lambda s: s.container("web").started, "started")
    status = await pod_node.pods.wait_for(
        KEY, lambda s: s.container("web").last_state.terminated is not None, "a restart"
    )
    message = status.container("web").last_state.terminated.message  # type: ignore[union-attr]
    assert message is not None and message.startswith("liveness probe failed")
