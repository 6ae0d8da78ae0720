"""A pod's life on both runtimes: it runs and is ready, restarts per policy with Kubernetes' back-off,
keeps its previous instance's log, and stops gracefully when deleted."""

from __future__ import annotations

import contextlib
from pathlib import Path

from node_agent.pods import PodManager, PodStatus
from tests.fixtures.pods import PodNode

KEY = "default/app"


async def _started(manager: PodManager) -> None:
    async with contextlib.aclosing(manager.logs(KEY, follow=True)) as lines:
        assert await anext(lines) == b"started\n"


def _state(status: PodStatus, container: str = "app") -> dict[str, object]:
    return status.container(container).state.to_kube()


async def test_a_pod_runs_and_reports_running_and_ready(pod_node: PodNode) -> None:
    manager = await pod_node.start()
    command = ["sh", "-c", "echo up $GREETING; exec sleep 1000"]
    bound = pod_node.pod(
        "app", [{"name": "app", "command": command, "env": [{"name": "GREETING", "value": "hello"}]}]
    )
    await manager.put(bound)
    status = await pod_node.pods.wait_for(
        KEY, lambda s: s.phase == "Running" and s.condition("Ready").status == "True"
    )
    app = status.container("app")
    assert app.ready and app.started and app.restart_count == 0
    assert app.state.running is not None
    assert app.container_id and app.container_id.startswith(f"{pod_node.runtime}://")
    assert {c.type: c.status for c in status.conditions} == {
        "PodScheduled": "True", "Initialized": "True", "ContainersReady": "True", "Ready": "True",
    }  # fmt: skip
    assert status.host_ip == "127.0.0.1" and status.pod_ip == "127.0.0.1" and status.start_time
    async with contextlib.aclosing(manager.logs(KEY, follow=True)) as lines:
        assert await anext(lines) == b"up hello\n"
    assert manager.status(KEY) == pod_node.pods.latest(KEY)


async def test_a_crashing_container_restarts_with_doubling_back_off_and_keeps_its_previous_log(
    pod_node: PodNode,
) -> None:
    manager = await pod_node.start()
    await manager.put(pod_node.pod("app", [{"name": "app", "command": ["sh", "-c", "echo run; exit 3"]}]))
    messages = []
    for count in range(3):
        status = await pod_node.pods.wait_for(
            KEY,
            lambda s, n=count: (
                _state(s).get("waiting", {}).get("reason") == "CrashLoopBackOff"  # type: ignore[union-attr]
                and s.container("app").restart_count == n
            ),
            f"CrashLoopBackOff after {count + 1} crashes",
            history=True,
        )
        app = status.container("app")
        assert app.last_state.terminated is not None
        assert app.last_state.terminated.exit_code == 3 and app.last_state.terminated.reason == "Error"
        assert status.phase == "Running" and not app.ready
        messages.append(app.state.waiting.message if app.state.waiting else "")
    assert [m.split()[1] for m in messages] == ["10s", "20s", "40s"]
    assert "restarting failed container=app pod=app_default" in messages[0]
    previous = [line async for line in manager.logs(KEY, previous=True)]
    assert previous == [b"run\n"]


async def test_restart_policy_never_leaves_a_failed_container_terminated(pod_node: PodNode) -> None:
    manager = await pod_node.start()
    await manager.put(
        pod_node.pod("app", [{"name": "app", "command": ["sh", "-c", "exit 4"]}], restartPolicy="Never")
    )
    status = await pod_node.pods.wait_for(KEY, lambda s: s.phase == "Failed", "Failed")
    terminated = status.container("app").state.terminated
    assert terminated is not None and terminated.exit_code == 4 and terminated.reason == "Error"
    assert status.container("app").restart_count == 0
    assert status.condition("Ready").status == "False" and status.condition("Ready").reason == "PodCompleted"


async def test_restart_policy_on_failure_restarts_failures_but_not_success(
    pod_node: PodNode, tmp_path: Path
) -> None:
    manager = await pod_node.start()
    containers: list[dict[str, object]] = [{"name": "app"}]
    volumes: list[dict[str, object]] = []
    ctl = pod_node.control_dir(tmp_path / "ctl", containers, volumes)  # type: ignore[arg-type]
    # Fails the first time, succeeds the second: the marker file survives the restart.
    containers[0]["command"] = ["sh", "-c", f"if [ -f {ctl}/ran ]; then exit 0; fi; touch {ctl}/ran; exit 1"]
    await manager.put(pod_node.pod("app", containers, restartPolicy="OnFailure", volumes=volumes))  # type: ignore[arg-type]
    status = await pod_node.pods.wait_for(KEY, lambda s: s.phase == "Succeeded", "Succeeded")
    app = status.container("app")
    assert app.restart_count == 1
    assert app.last_state.terminated is not None and app.last_state.terminated.exit_code == 1
    assert app.state.terminated is not None and app.state.terminated.reason == "Completed"


async def _deleted(pod_node: PodNode, manager: PodManager, on_term: str, grace: int) -> PodStatus:
    """The last status of a pod whose container runs ``on_term`` on SIGTERM, deleted once running."""
    script = f'trap "{on_term}" TERM; echo started; while true; do sleep 0.05; done'
    await manager.put(pod_node.pod("app", [{"name": "app", "command": ["sh", "-c", script]}],
                                   terminationGracePeriodSeconds=grace))  # fmt: skip
    await pod_node.pods.wait_for(KEY, lambda s: s.phase == "Running", "Running")
    await _started(manager)  # the trap is set
    await manager.delete(KEY)
    return [s for s in pod_node.pods.reports[KEY] if s is not None][-1]


async def test_delete_stops_the_container_gracefully_within_its_grace_period(pod_node: PodNode) -> None:
    manager = await pod_node.start()
    final = await _deleted(pod_node, manager, "echo got TERM; exit 0", grace=300)
    terminated = final.container("app").state.terminated
    assert terminated is not None and terminated.exit_code == 0, terminated
    assert final.phase == "Succeeded"
    assert pod_node.pods.latest(KEY) is None
    assert manager.keys() == []


async def test_a_container_that_ignores_sigterm_is_killed_after_the_grace_period(pod_node: PodNode) -> None:
    manager = await pod_node.start()
    final = await _deleted(pod_node, manager, "", grace=5)
    terminated = final.container("app").state.terminated
    assert terminated is not None and terminated.exit_code == 137, terminated
    assert final.phase == "Failed"


async def test_logs_follow_ends_with_the_container_and_tail_keeps_the_last_lines(
    pod_node: PodNode, tmp_path: Path
) -> None:
    manager = await pod_node.start()
    containers: list[dict[str, object]] = [{"name": "app"}]
    volumes: list[dict[str, object]] = []
    ctl = pod_node.control_dir(tmp_path / "ctl", containers, volumes)  # type: ignore[arg-type]
    # Prints two lines, then a third once the test creates the "go" file, then exits.
    containers[0]["command"] = [
        "sh",
        "-c",
        f"echo one; echo two; while [ ! -f {ctl}/go ]; do sleep 0.02; done; echo three",
    ]
    await manager.put(pod_node.pod("app", containers, restartPolicy="Never", volumes=volumes))  # type: ignore[arg-type]
    await pod_node.pods.wait_for(KEY, lambda s: s.phase == "Running", "Running")
    followed = []
    async for line in manager.logs(KEY, follow=True):
        followed.append(line)
        if line == b"two\n":
            (tmp_path / "ctl" / "go").touch()
    assert followed == [b"one\n", b"two\n", b"three\n"]
    assert [line async for line in manager.logs(KEY, tail=1)] == [b"three\n"]
    stamped = [line async for line in manager.logs(KEY, timestamps=True)]
    assert stamped[0].endswith(b" one\n") and stamped[0][:4].isdigit()
