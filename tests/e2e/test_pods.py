"""Pods through the whole stack: kubectl, the embedded API server, cloud-sync, the cloud link, the node.

Each test plays a user with the real kubectl against the stack of ``tests.fixtures.pod_stack`` and
looks only at what a user sees: ``kubectl get``, ``describe``, ``logs``, and the processes or
containers on the gateway.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import sys
from pathlib import Path

from node_agent import GatewaySettings
from node_agent.pods import BackOff
from tests.fixtures.pod_stack import NODE, PodStack, pod_manifest, running_stack
from tests.fixtures.pods import BusyboxImage
from tests.fixtures.processes import run_cli


def slow_backoff(stack: PodStack) -> GatewaySettings:
    """The stack's node with a long back-off: a failed start keeps its reason in the status."""
    settings = stack.node_settings()
    assert settings.pods is not None
    slow = dataclasses.replace(settings.pods, backoff=BackOff(initial=60.0, cap=120.0))
    return dataclasses.replace(settings, pods=slow)


async def table(stack: PodStack) -> dict[str, list[str]]:
    """``kubectl get pods``, row by pod name."""
    lines = (await stack.kubectl_run("get", "pods")).splitlines()[1:]
    return {line.split()[0]: line.split() for line in lines}


async def exited(pid: int, timeout: float = 30.0) -> None:
    """Until process ``pid`` (not a child of ours) has exited: its pidfd becomes readable."""
    try:
        descriptor = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    loop.add_reader(descriptor, done.set)
    try:
        async with asyncio.timeout(timeout):
            await done.wait()
    finally:
        loop.remove_reader(descriptor)
        os.close(descriptor)


async def podman_ps(image: BusyboxImage, node: str) -> list[str]:
    """Names of the containers of ``node``'s pods in the test's podman storage."""
    settings = image.podman
    process = await asyncio.create_subprocess_exec(
        "podman", "--root", str(settings.root), "--runroot", str(settings.runroot),
        "--runtime", "runc", "--cgroup-manager", "cgroupfs", "--events-backend", "file",
        "ps", "--all", "--format", "{{.Names}}", "--filter", f"label=io.edgetwin.node={node}",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await process.communicate()
    return out.decode().split()


async def test_a_pod_applied_with_kubectl_runs_on_its_node_reports_ready_shows_logs_and_stops_on_delete(
    any_pod_stack: PodStack, tmp_path: Path
) -> None:
    stack = any_pod_stack
    await stack.start_node()
    script = "echo hello from the edge; echo to stderr >&2; while true; do sleep 0.1; done"
    await stack.apply(pod_manifest("app", [stack.container("app", script)], **stack.spec()))
    await stack.wait("pod/app", "condition=Ready")
    table = await stack.kubectl_run("get", "pod", "app")
    assert table.splitlines()[1].split()[:4] == ["app", "1/1", "Running", "0"]
    pod = await stack.pod("app")
    status = pod["status"]
    assert status["phase"] == "Running"
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "PodScheduled": "True",
        "Initialized": "True",
        "ContainersReady": "True",
        "Ready": "True",
    }
    container = status["containerStatuses"][0]
    assert container["ready"] is True and "running" in container["state"]
    assert container["containerID"].startswith(f"{stack.runtime}://")
    assert status["startTime"] and status["hostIP"] == "127.0.0.1"
    # stdout and stderr are two pipes: their lines' order between them is not a given.
    logs = await stack.kubectl_run("logs", "app")
    assert sorted(logs.splitlines()) == ["hello from the edge", "to stderr"]
    last = (await stack.kubectl_run("logs", "app", "--tail=1")).splitlines()
    assert len(last) == 1 and last[0] in logs.splitlines()
    stamped = (await stack.kubectl_run("logs", "app", "--timestamps")).splitlines()
    assert any(line.endswith(" hello from the edge") for line in stamped)
    assert all(line[:4].isdigit() and "T" in line.split()[0] for line in stamped)

    await stack.kubectl_run("delete", "pod", "app", "--wait=true")
    gone = await stack.kubectl_run("get", "pods", "-o", "name")
    assert gone.strip() == ""
    if stack.runtime == "process":
        await exited(int(container["containerID"].removeprefix("process://")))
    else:
        assert stack.image is not None
        listed = await podman_ps(stack.image, NODE)
        assert listed == []


async def test_containers_restart_as_their_policy_says_and_the_previous_instance_keeps_its_logs(
    pod_stack: PodStack,
) -> None:
    stack = pod_stack
    await stack.start_node()
    crash = 'echo "run $(date +%s%N)"; exit 3'
    await stack.apply(pod_manifest("crasher", [stack.container("app", crash)]))
    await stack.apply(
        pod_manifest("done-ok", [stack.container("app", "echo finished")], restartPolicy="OnFailure")
    )
    await stack.apply(pod_manifest("done-bad", [stack.container("app", "exit 7")], restartPolicy="Never"))
    await stack.wait("pod/crasher", "jsonpath={.status.containerStatuses[0].restartCount}=2")
    await stack.wait("pod/done-ok", "jsonpath={.status.phase}=Succeeded")
    await stack.wait("pod/done-bad", "jsonpath={.status.phase}=Failed")
    crasher = (await stack.pod("crasher"))["status"]["containerStatuses"][0]
    assert crasher["lastState"]["terminated"]["exitCode"] == 3
    assert crasher["lastState"]["terminated"]["reason"] == "Error"
    previous = await stack.kubectl_run("logs", "crasher", "--previous")
    assert previous.startswith("run ")
    waiting = "jsonpath={.status.containerStatuses[0].state.waiting.reason}"
    await stack.wait("pod/crasher", f"{waiting}=CrashLoopBackOff")
    rows = await table(stack)
    assert rows["done-ok"][2] == "Completed"
    assert rows["done-bad"][2] == "Error"
    bad = (await stack.pod("done-bad"))["status"]["containerStatuses"][0]["state"]["terminated"]
    assert bad["exitCode"] == 7


async def test_kubectl_logs_follow_streams_until_the_container_ends(pod_stack: PodStack) -> None:
    stack = pod_stack
    await stack.start_node()
    script = "for i in 1 2 3; do echo line $i; sleep 0.3; done"
    await stack.apply(pod_manifest("counter", [stack.container("app", script)], restartPolicy="Never"))
    await stack.wait("pod/counter", "jsonpath={.status.phase}=Running")
    followed = await stack.kubectl_run("logs", "-f", "counter")
    assert followed.splitlines() == ["line 1", "line 2", "line 3"]


async def test_a_followed_log_is_closed_on_the_node_when_kubectl_goes_away(pod_stack: PodStack) -> None:
    stack = pod_stack
    gateway = await stack.start_node()
    script = "while true; do echo tick; sleep 0.1; done"
    await stack.apply(pod_manifest("ticker", [stack.container("app", script)]))
    await stack.wait("pod/ticker", "condition=Ready")
    follower = stack.kubectl.popen("logs", "-f", "ticker")
    try:
        assert follower.stdout is not None
        first = await asyncio.to_thread(follower.stdout.readline)
        assert first == "tick\n"
        assert gateway.pod_link is not None
        assert gateway.pod_link.logs.open_streams == 1
    finally:
        follower.send_signal(signal.SIGINT)
        await asyncio.to_thread(follower.wait, 30)
        if follower.stdout is not None:
            follower.stdout.close()
        if follower.stderr is not None:
            follower.stderr.close()
    async with asyncio.timeout(30):
        await gateway.pod_link.logs.idle.wait()


async def test_logs_of_a_pod_that_cannot_give_them_are_refused_with_the_reason(pod_stack: PodStack) -> None:
    stack = pod_stack
    await stack.start_node()
    await stack.apply(pod_manifest("solo", [stack.container("app", "sleep 1000")]))
    await stack.wait("pod/solo", "condition=Ready")
    previous = await stack.kubectl_run("logs", "solo", "--previous", check=False)
    assert 'previous terminated container "app" in pod "solo" not found' in previous
    wrong = await stack.kubectl_run("logs", "solo", "-c", "nope", check=False)
    assert "container nope is not valid for pod solo" in wrong
    await stack.apply(pod_manifest("unbound", [stack.container("app", "true")], node=None))
    unbound = await stack.kubectl_run("logs", "unbound", check=False)
    assert "pod unbound is not bound to a node yet" in unbound


async def test_pods_that_cannot_run_say_why_in_kubectl_and_the_others_run_on(pod_stack: PodStack) -> None:
    stack = pod_stack
    await stack.start_node(slow_backoff(stack))
    missing = {"name": "app", "image": "busybox", "command": ["/no/such/program"]}
    await stack.apply(pod_manifest("no-command", [missing]))
    mounted = stack.container("app", "sleep 1000", volumeMounts=[{"name": "data", "mountPath": "/data"}])
    await stack.apply(pod_manifest("with-volume", [mounted], volumes=[{"name": "data", "emptyDir": {}}]))
    unreadable = stack.container("app", "sleep 1000", ports=[{"containerPort": 99999}])
    await stack.apply(pod_manifest("unreadable", [unreadable]))
    await stack.apply(pod_manifest("fine", [stack.container("app", "sleep 1000")]))
    await stack.wait("pod/fine", "condition=Ready")
    await stack.wait(
        "pod/no-command", "jsonpath={.status.containerStatuses[0].state.waiting.reason}=RunContainerError"
    )
    await stack.wait("pod/with-volume", "jsonpath={.status.reason}=UnsupportedPodSpec")
    await stack.wait("pod/unreadable", "jsonpath={.status.reason}=InvalidPodSpec")
    rows = await table(stack)
    assert rows["no-command"][2] == "RunContainerError"
    assert rows["with-volume"][2] == "UnsupportedPodSpec"
    assert rows["unreadable"][2] == "InvalidPodSpec"
    assert rows["fine"][1:3] == ["1/1", "Running"]
    described = await stack.kubectl_run("describe", "pod", "with-volume")
    assert "UnsupportedPodSpec" in described and "cannot mount volumes" in described
    assert "/no/such/program" in await stack.kubectl_run("describe", "pod", "no-command")
    unread = (await stack.pod("unreadable"))["status"]
    assert unread["phase"] == "Failed" and "containerPort" in unread["message"]


async def test_config_maps_and_secrets_reach_the_pod_and_one_created_later_is_waited_for(
    pod_stack: PodStack,
) -> None:
    stack = pod_stack
    await stack.start_node()
    await stack.kubectl_run("create", "configmap", "settings", "--from-literal=greeting=hello")
    await stack.kubectl_run("create", "secret", "generic", "creds", "--from-literal=password=s3cret")
    env = [
        {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "greeting"}}},
        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
    ]
    script = 'echo "$GREETING $PASSWORD"; sleep 1000'
    await stack.apply(pod_manifest("configured", [stack.container("app", script, env=env)]))
    await stack.wait("pod/configured", "condition=Ready")
    assert (await stack.kubectl_run("logs", "configured")).strip() == "hello s3cret"
    waiting = [{"name": "LATER", "valueFrom": {"configMapKeyRef": {"name": "later", "key": "value"}}}]
    await stack.apply(
        pod_manifest("waits", [stack.container("app", 'echo "$LATER"; sleep 1000', env=waiting)])
    )
    await stack.wait(
        "pod/waits", "jsonpath={.status.containerStatuses[0].state.waiting.reason}=CreateContainerConfigError"
    )
    await stack.kubectl_run("create", "configmap", "later", "--from-literal=value=arrived")
    await stack.wait("pod/waits", "condition=Ready")
    assert (await stack.kubectl_run("logs", "waits")).strip() == "arrived"


async def test_the_binder_binds_a_pod_whose_node_selector_matches_a_ready_edge_node(
    pod_stack: PodStack,
) -> None:
    stack = pod_stack
    await stack.start_node()
    await stack.wait(f"node/{NODE}", "condition=Ready")
    selected = pod_manifest(
        "selected",
        [stack.container("app", "sleep 1000")],
        node=None,
        nodeSelector={"kubernetes.io/hostname": NODE},
    )
    nowhere = pod_manifest(
        "nowhere", [stack.container("app", "sleep 1000")], node=None, nodeSelector={"site": "mars"}
    )
    await stack.apply(selected)
    await stack.apply(nowhere)
    await stack.wait("pod/selected", "condition=Ready")
    assert (await stack.pod("selected"))["spec"]["nodeName"] == NODE
    await stack.wait("pod/nowhere", "condition=PodScheduled=false")
    condition = next(
        c for c in (await stack.pod("nowhere"))["status"]["conditions"] if c["type"] == "PodScheduled"
    )
    assert condition["reason"] == "Unschedulable"
    assert "didn't match Pod's node affinity/selector" in condition["message"]
    described = await stack.kubectl_run("describe", "pod", "nowhere")
    assert "FailedScheduling" in described
    assert "Scheduled" in await stack.kubectl_run("describe", "pod", "selected")
    await stack.kubectl_run("label", "node", NODE, "site=mars")
    await stack.wait("pod/nowhere", "condition=Ready")


async def test_a_node_restarted_while_the_cloud_is_unreachable_brings_its_pods_back_and_catches_up_after(
    any_pod_stack: PodStack,
) -> None:
    stack = any_pod_stack
    gateway = await stack.start_node()
    for name in ("keeper", "doomed"):
        await stack.apply(pod_manifest(name, [stack.container("app", "sleep 1000")], **stack.spec()))
        await stack.wait(f"pod/{name}", "condition=Ready")
    before = (await stack.pod("keeper"))["status"]["containerStatuses"][0]["containerID"]

    await stack.stop_cloud_broker()
    await stack.stop_node(gateway)
    if stack.runtime == "process":
        await exited(int(before.removeprefix("process://")))  # process pods stop with the agent
    gateway = await stack.start_node()
    pods = await stack.node_pods(gateway)
    status = await pods.wait_for("default/keeper", lambda s: s.phase == "Running", "Running, offline")
    await pods.wait_for("default/doomed", lambda s: s.phase == "Running", "Running, offline")
    # Process pods start again; podman containers kept running and are adopted.
    assert (status.container("app").container_id == before) == (stack.runtime == "podman")
    assert gateway.link is not None and not gateway.link.synced_once.is_set()

    # The cloud changes while the node cannot hear it.
    await stack.kubectl_run("delete", "pod", "doomed", "--wait=false")
    await stack.apply(pod_manifest("newcomer", [stack.container("app", "sleep 1000")], **stack.spec()))
    await stack.start_cloud_broker()
    await stack.wait("pod/newcomer", "condition=Ready")
    await stack.wait("pod/doomed", "delete")
    await pods.wait_gone("default/doomed")
    await stack.wait("pod/keeper", "condition=Ready")
    keeper = (await stack.pod("keeper"))["status"]["containerStatuses"][0]["containerID"]
    assert keeper == status.container("app").container_id
    assert sorted(gateway.pods.keys()) == ["default/keeper", "default/newcomer"]  # type: ignore[union-attr]


async def test_a_mapper_runs_as_a_pod_and_serves_its_device_through_the_nodes_twin(
    pod_stack: PodStack,
) -> None:
    stack = pod_stack
    await stack.start_node()
    model = {
        "apiVersion": "devices.kubeedge.io/v1beta1",
        "kind": "DeviceModel",
        "metadata": {"name": "counter-model"},
        "spec": {
            "protocol": "virtual",
            "properties": [{"name": "count", "type": "INT", "accessMode": "ReadOnly"}],
        },
    }
    device = {
        "apiVersion": "devices.kubeedge.io/v1beta1",
        "kind": "Device",
        "metadata": {"name": "counter"},
        "spec": {
            "deviceModelRef": {"name": "counter-model"},
            "nodeName": NODE,
            "protocol": {"protocolName": "virtual"},
            "properties": [
                {
                    "name": "count",
                    "collectCycle": 100,
                    "reportCycle": 200,
                    "reportToCloud": True,
                    "visitors": {"protocolName": "virtual", "configData": {"initial": "40", "step": 1}},
                }
            ],
        },
    }
    await stack.apply(json.dumps(model) + "\n---\n" + json.dumps(device))
    command = [sys.executable, "-m", "edgetwin", "mapper", "run", "virtual", "--node", NODE]
    mapper = {"name": "mapper", "image": "edgetwin", "command": [*command, "--broker", stack.local.url]}
    await stack.apply(pod_manifest("virtual-mapper", [mapper]))
    await stack.wait("pod/virtual-mapper", "condition=Ready")
    await stack.wait("device/counter", "jsonpath={.status.state}=online")
    await stack.wait("device/counter", "jsonpath={.status.twins[0].reported.value}")
    reported = int(
        await stack.kubectl_run(
            "get", "device", "counter", "-o", "jsonpath={.status.twins[0].reported.value}"
        )
    )
    assert reported >= 40
    assert "mapper virtual for node edge-1" in await stack.kubectl_run("logs", "virtual-mapper")


async def test_edgetwin_cloud_logs_fetches_a_log_over_the_cloud_link_as_on_a_real_cluster(
    pod_stack: PodStack,
) -> None:
    stack = pod_stack
    await stack.start_node()
    await stack.apply(pod_manifest("app", [stack.container("app", "echo one; echo two; sleep 1000")]))
    await stack.wait("pod/app", "condition=Ready")
    where = ["--data-dir", str(stack.files.data_dir), "--kubeconfig", str(stack.api_server.kubeconfig_path)]
    where += ["--broker", stack.cloud_broker.address.url]
    result = await asyncio.to_thread(run_cli, "cloud", "logs", "app", "--tail", "1", *where)
    assert (result.returncode, result.stdout) == (0, "two\n"), result.stderr
    missing = await asyncio.to_thread(run_cli, "cloud", "logs", "nope", *where)
    assert missing.returncode == 2 and 'pods "nope" not found' in missing.stderr
    previous = await asyncio.to_thread(run_cli, "cloud", "logs", "app", "--previous", *where)
    assert previous.returncode == 2
    assert previous.stderr.strip().endswith('previous terminated container "app" in pod "app" not found')


async def test_kubectl_run_as_docs_pods_md_shows_it(pod_stack: PodStack) -> None:
    stack = pod_stack
    await stack.start_node()
    await stack.kubectl_run(
        "run", "hello", "--image=busybox", "--restart=Never",
        f'--overrides={{"spec":{{"nodeName":"{NODE}"}}}}',
        "--command", "--", "sh", "-c", "echo hello from the edge; sleep 3600",
    )  # fmt: skip
    await stack.wait("pod/hello", "condition=Ready")
    row = (await stack.kubectl_run("get", "pod", "hello")).splitlines()[1].split()
    assert row[:4] == ["hello", "1/1", "Running", "0"]
    assert await stack.kubectl_run("logs", "hello") == "hello from the edge\n"
    await stack.kubectl_run("delete", "pod", "hello")


async def test_a_podman_pod_whose_image_is_not_there_says_so_and_the_others_run(
    busybox_image: BusyboxImage, tmp_path: Path
) -> None:
    async with running_stack(tmp_path, "podman", busybox_image) as stack:
        await stack.start_node(slow_backoff(stack))  # pulls are retried only after a minute
        never = {"name": "app", "image": "localhost/edgetwin-test/missing:1", "imagePullPolicy": "Never"}
        await stack.apply(pod_manifest("never", [never], hostNetwork=True))
        pulled = {"name": "app", "image": "localhost/edgetwin-test/missing:1", "imagePullPolicy": "Always"}
        await stack.apply(pod_manifest("pulled", [pulled], hostNetwork=True))
        await stack.apply(pod_manifest("fine", [stack.container("app", "sleep 1000")], **stack.spec()))
        waiting = "jsonpath={.status.containerStatuses[0].state.waiting.reason}"
        await stack.wait("pod/never", f"{waiting}=ErrImageNeverPull")
        await stack.wait("pod/pulled", f"{waiting}=ImagePullBackOff")
        await stack.wait("pod/fine", "condition=Ready")
        assert "ImagePullBackOff" in await stack.kubectl_run("describe", "pod", "pulled")
        state = (await stack.pod("pulled"))["status"]["containerStatuses"][0]["state"]["waiting"]
        assert state["message"].startswith('Back-off pulling image "localhost/edgetwin-test/missing:1"')
        rows = await table(stack)
        assert rows["never"][2] == "ErrImageNeverPull"
        assert rows["pulled"][2] == "ImagePullBackOff"
        assert rows["fine"][1:3] == ["1/1", "Running"]
