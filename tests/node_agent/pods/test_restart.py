"""Offline autonomy and the desired set: pods come back from the gateway's disk when the agent
restarts (podman adopts its containers, the process runtime restarts its commands), and ``apply``
adds, changes and removes pods to match what the caller wants."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from node_agent.pods import PodmanRuntime
from tests.fixtures.pods import PodNode, podman_children

SLEEPER = {"name": "app", "command": ["sh", "-c", "echo up; exec sleep 1000"]}


async def test_a_restarted_agent_brings_the_same_pods_back_from_disk(pod_node: PodNode) -> None:
    manager = await pod_node.start()
    await manager.put(pod_node.pod("app", [dict(SLEEPER)]))
    first = await pod_node.pods.wait_for(
        "default/app", lambda s: s.condition("Ready").status == "True", "Ready"
    )
    stored = json.loads((pod_node.data_dir / "pods" / "specs" / "default_app.json").read_text())
    assert stored["pod"]["spec"]["containers"][0]["command"] == SLEEPER["command"]

    restarted = await pod_node.restart_agent(manager)
    assert restarted.keys() == ["default/app"]
    again = await pod_node.pods.wait_for(
        "default/app", lambda s: s.condition("Ready").status == "True", "Ready"
    )
    before, after = first.container("app").container_id, again.container("app").container_id
    if pod_node.runtime == "podman":
        assert after == before  # the container kept running while the agent was down, and was adopted
    else:
        assert after != before  # a process dies with its agent and is started again
    async with contextlib.aclosing(restarted.logs("default/app", follow=True)) as lines:
        assert await anext(lines) == b"up\n"


async def test_apply_adds_updates_and_deletes_to_match_the_desired_set(pod_node: PodNode) -> None:
    manager = await pod_node.start()
    one, two = pod_node.pod("one", [dict(SLEEPER)]), pod_node.pod("two", [dict(SLEEPER)])
    await manager.apply([one, two])
    assert manager.keys() == ["default/one", "default/two"]
    first = await pod_node.pods.wait_for("default/two", lambda s: s.phase == "Running", "Running")
    changed = pod_node.pod("two", [{**SLEEPER, "command": ["sh", "-c", "echo changed; exec sleep 1000"]}])
    await manager.apply([changed])
    await pod_node.pods.wait_gone("default/one")
    assert manager.keys() == ["default/two"]
    second = await pod_node.pods.wait_for(
        "default/two",
        lambda s: (
            s.phase == "Running" and s.container("app").container_id != first.container("app").container_id
        ),
    )
    assert second.container("app").state.running is not None
    assert not (pod_node.data_dir / "pods" / "specs" / "default_one.json").exists()
    relabelled = changed.model_copy(update={"pod": changed.pod.model_copy(update={"kind": "Pod"})})
    await manager.apply([relabelled])  # nothing that shapes a container changed: nothing restarts
    assert manager.status("default/two") == pod_node.pods.latest("default/two")


async def test_an_unreadable_pod_file_is_moved_aside_and_the_other_pods_still_start(
    process_node: PodNode,
) -> None:
    manager = await process_node.start()
    await manager.put(process_node.pod("app", [dict(SLEEPER)]))
    await process_node.stop(manager)
    specs = process_node.data_dir / "pods" / "specs"
    (specs / "default_torn.json").write_text('{"pod": {"metadata": ')
    restarted = await process_node.start()
    assert restarted.keys() == ["default/app"]
    assert (specs / "default_torn.corrupt").exists()
    await process_node.pods.wait_for("default/app", lambda s: s.phase == "Running", "Running")


async def test_podman_containers_of_pods_deleted_while_the_agent_was_down_are_removed(
    podman_node: PodNode,
) -> None:
    manager = await podman_node.start()
    await manager.put(podman_node.pod("gone", [dict(SLEEPER)]))
    await podman_node.pods.wait_for("default/gone", lambda s: s.phase == "Running", "Running")
    await podman_node.stop(manager)
    (podman_node.data_dir / "pods" / "specs" / "default_gone.json").unlink()
    await podman_node.start()
    assert podman_node.image is not None
    runtime = PodmanRuntime(podman_node.node, podman_node.data_dir / "probe", podman_node.image.podman)
    _, out, _ = await runtime.podman(
        "ps", "--all", "--quiet", "--filter", f"label=io.edgetwin.node={podman_node.node}"
    )
    assert out.strip() == b""


async def test_a_podman_container_that_ended_while_the_agent_was_down_is_reported_as_ended(
    podman_node: PodNode, tmp_path: Path
) -> None:
    manager = await podman_node.start()
    containers: list[dict[str, Any]] = [{"name": "app"}]
    volumes: list[dict[str, Any]] = []
    ctl = podman_node.control_dir(tmp_path / "ctl", containers, volumes)
    containers[0]["command"] = ["sh", "-c", f"while [ ! -f {ctl}/exit ]; do sleep 0.02; done; exit 5"]
    await manager.put(podman_node.pod("app", containers, volumes=volumes, restartPolicy="Never"))
    running = await podman_node.pods.wait_for("default/app", lambda s: s.phase == "Running", "Running")
    await podman_node.stop(manager)
    (tmp_path / "ctl" / "exit").touch()
    assert podman_node.image is not None
    runtime = PodmanRuntime(podman_node.node, podman_node.data_dir / "probe", podman_node.image.podman)
    container_id = (running.container("app").container_id or "").removeprefix("podman://")
    code, out, _ = await runtime.podman("wait", container_id)
    assert (code, out.strip()) == (0, b"5")
    await podman_node.start()
    status = await podman_node.pods.wait_for("default/app", lambda s: s.phase == "Failed", "Failed")
    terminated = status.container("app").state.terminated
    assert terminated is not None and terminated.exit_code == 5
    assert terminated.container_id == running.container("app").container_id


async def test_an_agent_stopped_while_a_podman_container_starts_finishes_the_start_and_adopts_it(
    podman_node: PodNode,
) -> None:
    manager = await podman_node.start()
    await manager.put(podman_node.pod("app", [dict(SLEEPER)]))
    await podman_node.pods.wait_for(
        "default/app",
        lambda s: (
            s.container("app").state.waiting is not None
            and s.container("app").state.waiting.reason == "ContainerCreating"
        ),
        "ContainerCreating",
        history=True,
    )
    await podman_node.stop(manager)
    assert podman_children() == []  # no podman command left behind, running unawaited
    await podman_node.start()
    status = await podman_node.pods.wait_for("default/app", lambda s: s.phase == "Running", "Running")
    assert status.container("app").restart_count == 0
