"""Bad input and faults: each pod says why in its status, and the node's other pods run on."""

from __future__ import annotations

from typing import Any

import pytest

from node_agent.pods import BoundPod, ConfigMap, process
from tests.fixtures.pods import PodNode

HEALTHY = {"name": "app", "command": ["sh", "-c", "exec sleep 1000"]}


def _waiting(status: Any, container: str = "app") -> tuple[str, str]:
    waiting = status.container(container).state.waiting
    return (waiting.reason, waiting.message or "") if waiting else ("", "")


async def test_a_command_that_does_not_exist_is_a_run_container_error_and_others_run_on(
    pod_node: PodNode,
) -> None:
    manager = await pod_node.start()
    await manager.put(pod_node.pod("healthy", [dict(HEALTHY)]))
    await manager.put(pod_node.pod("broken", [{"name": "app", "command": ["/no/such/command", "--flag"]}]))
    status = await pod_node.pods.wait_for(
        "default/broken", lambda s: _waiting(s)[0] == "RunContainerError", "RunContainerError", history=True
    )
    _, message = _waiting(status)
    assert "/no/such/command" in message and ("no such file" in message.lower() or "not found" in message)
    last = status.container("app").last_state.terminated
    assert last is not None and last.reason == "StartError" and last.exit_code == 128
    again = await pod_node.pods.wait_for(
        "default/broken",
        lambda s: s.container("app").restart_count >= 1 and _waiting(s)[0] == "RunContainerError",
    )
    assert again.phase == "Running"  # it ran (and failed) once: no longer Pending, as in Kubernetes
    healthy = await pod_node.pods.wait_for(
        "default/healthy", lambda s: s.condition("Ready").status == "True", "Ready"
    )
    assert healthy.container("app").restart_count == 0


async def test_a_child_that_fails_before_exec_without_saying_how_is_a_run_container_error(
    process_node: PodNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A child that fails between fork and exec reaches the agent as subprocess's SubprocessError, not
    # an OSError (its setup raised, or it died halfway through reporting an exec error).
    def failing_setup(no_new_privileges: bool) -> None:
        raise RuntimeError("the child's setup failed")

    monkeypatch.setattr(process, "_child_setup", failing_setup)
    manager = await process_node.start()
    await manager.put(process_node.pod("app", [dict(HEALTHY)]))
    status = await process_node.pods.wait_for(
        "default/app", lambda s: _waiting(s)[0] == "RunContainerError", "RunContainerError", history=True
    )
    assert "cannot run 'sh'" in _waiting(status)[1]
    last = status.container("app").last_state.terminated
    assert last is not None and last.reason == "StartError"
    monkeypatch.undo()  # the next start, after the back-off, succeeds
    running = await process_node.pods.wait_for(
        "default/app", lambda s: s.container("app").state.running is not None, "Running"
    )
    assert running.container("app").restart_count >= 1


async def test_a_start_that_fails_unexpectedly_does_not_keep_the_other_pods_from_stopping(
    process_node: PodNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    start = process.ProcessRuntime.start

    async def start_or_fail(self: process.ProcessRuntime, launch: Any) -> Any:
        if launch.pod.metadata.name == "broken":
            raise RuntimeError("a bug in the runtime")
        return await start(self, launch)

    monkeypatch.setattr(process.ProcessRuntime, "start", start_or_fail)
    manager = await process_node.start()
    await manager.put(process_node.pod("healthy", [dict(HEALTHY)]))
    await process_node.pods.wait_for("default/healthy", lambda s: s.phase == "Running", "Running")
    await manager.put(process_node.pod("broken", [dict(HEALTHY)]))
    await process_node.pods.wait_for(
        "default/broken", lambda s: _waiting(s)[0] == "ContainerCreating", "ContainerCreating", history=True
    )
    await process_node.stop(manager)  # the agent stops: every pod's containers with it
    healthy = process_node.pods.latest("default/healthy")
    assert healthy is not None and healthy.container("app").state.terminated is not None


async def test_a_missing_config_map_key_waits_with_its_reason_until_the_config_map_comes(
    pod_node: PodNode,
) -> None:
    manager = await pod_node.start()
    container = {
        **HEALTHY,
        "env": [{"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}}],
    }
    bound = pod_node.pod("app", [container])
    await manager.put(bound)
    status = await pod_node.pods.wait_for(
        "default/app",
        lambda s: _waiting(s)[0] == "CreateContainerConfigError",
        "CreateContainerConfigError",
        history=True,
    )
    assert _waiting(status)[1] == 'configmap "settings" not found'
    assert status.phase == "Pending"
    settings = ConfigMap.model_validate({"metadata": {"name": "settings"}, "data": {"mode": "eco"}})
    await manager.put(bound.model_copy(update={"config_maps": {"settings": settings}}))
    await pod_node.pods.wait_for("default/app", lambda s: s.phase == "Running", "Running")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"volumes": [{"name": "data", "nfs": {"server": "nas", "path": "/x"}}]},
         "volume data: type nfs is not supported"),
        ({"initContainers": [{"name": "init", "command": ["true"]}]}, "initContainers are not supported"),
        ({"containers": [{**HEALTHY, "securityContext": {"seLinuxOptions": {"level": "s0"}}}]},
         "container app: securityContext seLinuxOptions not supported"),
        ({"containers": [{**HEALTHY, "livenessProbe": {"grpc": {"port": 9000}}}]},
         "grpc probes are not supported"),
        ({"securityContext": {"sysctls": [{"name": "net.core.somaxconn", "value": "1024"}]}},
         "pod securityContext sysctls not supported"),
    ],
)  # fmt: skip
async def test_a_spec_no_runtime_can_honour_is_rejected_with_the_reason(
    pod_node: PodNode, change: dict[str, Any], expected: str
) -> None:
    manager = await pod_node.start()
    change = dict(change)
    containers = change.pop("containers", [dict(HEALTHY)])
    await manager.put(pod_node.pod("odd", containers, **change))
    status = await pod_node.pods.wait_for(
        "default/odd", lambda s: s.phase == "Failed", "Failed", history=True
    )
    assert status.reason == "UnsupportedPodSpec"
    assert expected in (status.message or "")
    assert status.container_statuses == []
    assert manager.status("default/odd") == status
    await manager.delete("default/odd")
    assert pod_node.pods.latest("default/odd") is None


async def test_the_process_runtime_rejects_what_it_cannot_provide(process_node: PodNode) -> None:
    manager = await process_node.start()
    container = {
        "name": "app",
        "image": "nginx",
        "volumeMounts": [{"name": "cache", "mountPath": "/cache"}],
        "resources": {"limits": {"memory": "64Mi"}},
    }
    await manager.put(process_node.pod("app", [container], volumes=[{"name": "cache", "emptyDir": {}}]))
    await manager.put(process_node.pod("noimage", [{"name": "app", "image": "nginx"}]))
    status = await process_node.pods.wait_for("default/app", lambda s: s.phase == "Failed", history=True)
    assert "the process runtime cannot mount volumes (cache)" in (status.message or "")
    assert "cannot enforce resources.limits" in (status.message or "")
    status = await process_node.pods.wait_for("default/noimage", lambda s: s.phase == "Failed", history=True)
    assert "needs a command" in (status.message or "")


async def test_the_service_account_token_volume_a_real_api_server_adds_is_skipped(
    process_node: PodNode,
) -> None:
    manager = await process_node.start()
    mount = {
        "name": "kube-api-access-x1",
        "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
        "readOnly": True,
    }
    volume = {
        "name": "kube-api-access-x1",
        "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]},
    }
    await manager.put(process_node.pod("app", [{**HEALTHY, "volumeMounts": [mount]}], volumes=[volume]))
    await process_node.pods.wait_for("default/app", lambda s: s.phase == "Running", "Running", history=True)


async def test_an_image_that_is_not_there_backs_off_with_image_pull_back_off(podman_node: PodNode) -> None:
    manager = await podman_node.start()
    await manager.put(podman_node.pod("app", [{**HEALTHY, "image": "localhost/edgetwin-test/absent:1"}]))
    await manager.put(
        podman_node.pod("never", [{**HEALTHY, "image": "localhost/absent:2", "imagePullPolicy": "Never"}])
    )
    await manager.put(podman_node.pod("healthy", [dict(HEALTHY)]))
    status = await podman_node.pods.wait_for(
        "default/app", lambda s: _waiting(s)[0] == "ImagePullBackOff", "ImagePullBackOff", history=True
    )
    assert any(_waiting(s)[0] == "ErrImagePull" for s in podman_node.pods.reports["default/app"] if s)
    assert (
        'Back-off pulling image "localhost/edgetwin-test/absent:1": failed to pull image'
        in _waiting(status)[1]
    )
    assert status.phase == "Pending"
    never = await podman_node.pods.wait_for(
        "default/never", lambda s: _waiting(s)[0] == "ErrImageNeverPull", history=True
    )
    assert "is not present with pull policy of Never" in _waiting(never)[1]
    await podman_node.pods.wait_for(
        "default/healthy", lambda s: s.condition("Ready").status == "True", "Ready"
    )


async def test_podman_rejects_what_it_cannot_provide(podman_node: PodNode) -> None:
    manager = await podman_node.start()
    two = [dict(HEALTHY), {**HEALTHY, "name": "sidecar"}]
    await manager.put(podman_node.pod("two", two, hostNetwork=False))
    gpu = {**HEALTHY, "resources": {"limits": {"nvidia.com/gpu": 1}}}
    await manager.put(podman_node.pod("gpu", [gpu]))
    status = await podman_node.pods.wait_for("default/two", lambda s: s.phase == "Failed", history=True)
    assert "several containers need hostNetwork: true" in (status.message or "")
    status = await podman_node.pods.wait_for("default/gpu", lambda s: s.phase == "Failed", history=True)
    assert "resources.limits nvidia.com/gpu is not supported" in (status.message or "")


def test_a_pod_without_containers_is_refused_at_the_boundary() -> None:
    with pytest.raises(ValueError, match="containers"):
        BoundPod.model_validate({"pod": {"metadata": {"name": "x"}, "spec": {"containers": []}}})
