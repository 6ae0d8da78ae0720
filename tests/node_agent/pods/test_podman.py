"""What only the podman runtime gives a pod: volumes of the four supported types, env from
ConfigMaps and Secrets, memory and cpu limits, and a pod without host network having none; and
its podman commands, never left running behind a caller that gave up on them."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

from node_agent.pods import BoundPod, ConfigMap, PodmanRuntime, Secret
from tests.fixtures.pods import BusyboxImage, PodNode, podman_children
from tests.mappers.harness import until


async def _lines(node: PodNode, key: str, manager: object) -> list[str]:
    return [line.decode().rstrip("\n") async for line in manager.logs(key)]  # type: ignore[attr-defined]


async def test_volumes_env_and_working_dir_reach_the_container(podman_node: PodNode, tmp_path: Path) -> None:
    manager = await podman_node.start()
    host = tmp_path / "host"
    host.mkdir()
    (host / "greeting").write_text("from the host\n")
    script = (
        "cat /etc/app/mode /etc/app/renamed/level /secret/token /host/greeting; "
        "echo $MODE $TOKEN $NODE $POD; "
        "echo scratch > /scratch/file; cat /scratch/file; pwd; ls -l /secret/token | cut -c1-10"
    )
    container = {
        "name": "app",
        "command": ["sh", "-c", script],
        "workingDir": "/scratch",
        "env": [
            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "POD", "value": "$(NODE)/$(MODE)"},
        ],
        "volumeMounts": [
            {"name": "settings", "mountPath": "/etc/app"},
            {"name": "settings-items", "mountPath": "/etc/app/renamed"},
            {"name": "creds", "mountPath": "/secret", "readOnly": True},
            {"name": "host", "mountPath": "/host"},
            {"name": "scratch", "mountPath": "/scratch"},
        ],
    }
    volumes = [
        {"name": "settings", "configMap": {"name": "settings"}},
        {
            "name": "settings-items",
            "configMap": {"name": "settings", "items": [{"key": "level", "path": "level"}]},
        },
        {"name": "creds", "secret": {"secretName": "creds", "defaultMode": 0o400}},
        {"name": "host", "hostPath": {"path": str(host), "type": "Directory"}},
        {"name": "scratch", "emptyDir": {}},
    ]
    pod = podman_node.pod(
        "app", [container], volumes=volumes, restartPolicy="Never", nodeName=podman_node.node
    ).pod
    settings = ConfigMap.model_validate(
        {"metadata": {"name": "settings"}, "data": {"mode": "eco", "level": "3"}}
    )
    token = base64.b64encode(b"s3cret").decode()
    creds = Secret.model_validate({"metadata": {"name": "creds"}, "data": {"token": token}})
    bound = BoundPod(pod=pod, config_maps={"settings": settings}, secrets={"creds": creds})
    await manager.put(bound)
    status = await podman_node.pods.wait_for(
        "default/app", lambda s: s.phase in ("Succeeded", "Failed"), history=True
    )
    lines = await _lines(podman_node, "default/app", manager)
    assert status.phase == "Succeeded", lines
    assert lines == [
        "eco3s3cretfrom the host",  # the ConfigMap's and Secret's values have no newline
        f"eco s3cret {podman_node.node} {podman_node.node}/eco",
        "scratch", "/scratch", "-r--------",
    ]  # fmt: skip


async def test_memory_and_cpu_limits_become_the_containers_limits(podman_node: PodNode) -> None:
    manager = await podman_node.start()
    container = {
        "name": "app",
        "command": ["sleep", "1000"],
        "resources": {"limits": {"memory": "64Mi", "cpu": "500m"}},
    }
    await manager.put(podman_node.pod("app", [container]))
    status = await podman_node.pods.wait_for(
        "default/app", lambda s: s.phase == "Running", "Running", history=True
    )
    assert podman_node.image is not None
    runtime = PodmanRuntime(podman_node.node, podman_node.data_dir / "probe", podman_node.image.podman)
    container_id = (status.container("app").container_id or "").removeprefix("podman://")
    details = await runtime.inspect(container_id)
    assert details["HostConfig"]["Memory"] == 64 * 2**20
    assert details["HostConfig"]["NanoCpus"] == 500_000_000


async def test_a_pod_without_host_network_has_only_loopback(podman_node: PodNode) -> None:
    manager = await podman_node.start()
    container = {"name": "app", "command": ["sh", "-c", "cut -d: -f1 /proc/net/dev | tail -n +3 | tr -d ' '"]}
    await manager.put(podman_node.pod("app", [container], hostNetwork=False, restartPolicy="Never"))
    status = await podman_node.pods.wait_for(
        "default/app", lambda s: s.phase == "Succeeded", "Succeeded", history=True
    )
    assert await _lines(podman_node, "default/app", manager) == ["lo"]
    assert status.pod_ip is None and status.host_ip == "127.0.0.1"


async def test_a_podman_command_cancelled_halfway_is_ended_not_left_running(
    busybox_image: BusyboxImage, tmp_path: Path
) -> None:
    runtime = PodmanRuntime("node-x", tmp_path / "podman", busybox_image.podman)
    events = asyncio.create_task(runtime.podman("events"))  # streams until stopped
    await until(lambda: bool(podman_children()))
    events.cancel()
    await asyncio.gather(events, return_exceptions=True)
    assert podman_children() == []
