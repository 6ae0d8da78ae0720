"""Pods bound to edge nodes: carried to them with their ConfigMaps and Secrets, their status written
back, deleted pods finished once their node stopped them, logs fetched from the node.

The node is a ``NodePeer`` speaking the link by hand, so each test sees exactly the messages.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from edgemqtt import Message
from tests.cloud_sync.conftest import CloudStack
from tests.cloud_sync.peer import NodePeer
from twin.link_pods import (
    HeldPod,
    LogChunk,
    LogRequest,
    PodChange,
    PodReport,
    PodStatusReport,
    reply_topic,
)

TIMEOUT = 20.0


def pod_yaml(name: str, node: str, **spec: Any) -> str:
    container: dict[str, Any] = {"name": "app", "image": "busybox", "command": ["sleep", "1000"]}
    container.update(spec.pop("container", {}))
    body = {"nodeName": node, "containers": [container], **spec}
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": body})


async def wait_down(node: NodePeer, kind: str, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The first ``down/{kind}`` body (in arrival order) that ``predicate`` accepts."""

    def wanted(message: Message) -> bool:
        return message.topic.endswith(f"/down/{kind}") and predicate(orjson.loads(message.payload))

    _, message = await node.other_message(wanted)
    body: dict[str, Any] = orjson.loads(message.payload)
    return body


async def uid_of(stack: CloudStack, name: str) -> str:
    return str(json.loads(await stack.kubectl_run("get", "pod", name, "-o", "json"))["metadata"]["uid"])


async def test_a_node_that_runs_pods_gets_those_bound_to_it_with_their_objects_and_then_only_changes(
    stack: CloudStack,
) -> None:
    await stack.kubectl_run("create", "configmap", "settings", "--from-literal=mode=fast")
    await stack.kubectl_run("create", "secret", "generic", "creds", "--from-literal=password=pw")
    env = [{"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}}]
    volume = [{"name": "creds", "secret": {"secretName": "creds"}}]
    await stack.apply(pod_yaml("app", "node-a", container={"env": env}, volumes=volume))
    await stack.apply(pod_yaml("elsewhere", "node-b"))
    await stack.start_cloud()
    async with stack.peer("node-a") as node:
        sync = await node.hello(pods={})
        assert [a.key for a in sync.pods] == ["default/app"]
        sent = sync.pods[0]
        assert sent.config_maps["settings"]["data"] == {"mode": "fast"}
        assert sent.secrets["creds"]["data"] == {"password": "cHc="}
        assert "status" not in sent.pod and sent.revision
        held = {"default/app": HeldPod(uid=sent.uid, revision=sent.revision)}
        again = await node.hello(pods={**held, "default/stray": HeldPod(uid="x", revision="y")})
        assert again.pods == [] and again.removed_pods == ["default/stray"]

        await stack.kubectl_run("patch", "configmap", "settings", "-p", '{"data":{"mode":"slow"}}')
        change = PodChange.model_validate(
            await wait_down(
                node, "pod", lambda b: b["op"] == "upsert" and b["assignment"]["revision"] != sent.revision
            )
        )
        assert change.assignment is not None
        assert change.assignment.config_maps["settings"]["data"] == {"mode": "slow"}
        others = await node.hello(pods=None)  # a hello that runs no pods is sent none
        assert others.pods == []


async def test_the_status_a_node_reports_is_written_to_the_pod_and_acknowledged(stack: CloudStack) -> None:
    await stack.apply(pod_yaml("app", "node-a"))
    await stack.apply(pod_yaml("theirs", "node-b"))
    await stack.start_cloud()
    uid = await uid_of(stack, "app")
    theirs = await uid_of(stack, "theirs")
    status = {
        "phase": "Running",
        "hostIP": "10.1.2.3",
        "podIP": "10.1.2.3",
        "startTime": "2026-01-01T00:00:00Z",
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:01Z"}],
        "containerStatuses": [
            {
                "name": "app",
                "image": "busybox",
                "ready": True,
                "restartCount": 2,
                "state": {"running": {"startedAt": "2026-01-01T00:00:01Z"}},
                "lastState": {
                    "terminated": {"exitCode": 1, "reason": "Error", "finishedAt": "2026-01-01T00:00:00Z"}
                },
            }
        ],
    }
    async with stack.peer("node-a") as node:
        await node.hello(pods={})
        await node.raw("podstatus", b"{not json")
        await node.raw("podstatus", b'{"seq": 1, "pods": {"default/app": {"status": {}}}}')
        report = PodStatusReport(
            seq=7,
            pods={
                "default/app": PodReport(uid=uid, status=status, version=5),
                "default/theirs": PodReport(uid=theirs, status={"phase": "Failed"}, version=5),
            },
        )
        await node.raw("podstatus", report.model_dump_json().encode())
        await node.wait_ack("podstatus", 7)
        await stack.wait("pod/app", "condition=Ready")
        pod = json.loads(await stack.kubectl_run("get", "pod", "app", "-o", "json"))
        assert pod["status"]["phase"] == "Running" and pod["status"]["podIP"] == "10.1.2.3"
        assert pod["status"]["containerStatuses"][0]["restartCount"] == 2
        assert pod["status"]["qosClass"] == "BestEffort"  # the API server's, kept
        table = await stack.kubectl_run("get", "pod", "app")
        assert table.splitlines()[1].split()[1:4] == ["1/1", "Running", "2"]
        # A late resend of an older status changes nothing.
        older = PodStatusReport(
            seq=8, pods={"default/app": PodReport(uid=uid, status={"phase": "Pending"}, version=4)}
        )
        await node.raw("podstatus", older.model_dump_json().encode())
        await node.wait_ack("podstatus", 8)
    assert (
        json.loads(await stack.kubectl_run("get", "pod", "app", "-o", "json"))["status"]["phase"] == "Running"
    )
    theirs_now = json.loads(await stack.kubectl_run("get", "pod", "theirs", "-o", "json"))
    assert theirs_now["status"]["phase"] == "Pending"  # node-a may not speak for node-b's pods
    assert stack.cloud.metrics.messages_invalid.labels("podstatus")._value.get() == 2


async def test_a_deleted_pod_is_stopped_by_its_node_and_then_deleted_for_good(stack: CloudStack) -> None:
    await stack.apply(pod_yaml("app", "node-a", terminationGracePeriodSeconds=5))
    await stack.apply(pod_yaml("unheld", "node-a"))
    await stack.start_cloud()
    uid = await uid_of(stack, "app")
    async with stack.peer("node-a") as node:
        sync = await node.hello(pods={})
        held = {a.key: HeldPod(uid=a.uid, revision=a.revision) for a in sync.pods}
        await stack.kubectl_run("delete", "pod", "app", "--wait=false")
        change = PodChange.model_validate(await wait_down(node, "pod", lambda b: b["op"] == "delete"))
        assert (change.key, change.uid, change.grace) == ("default/app", uid, 5)
        table = await stack.kubectl_run("get", "pod", "app")
        assert table.splitlines()[1].split()[2] == "Terminating"
        gone = PodStatusReport(seq=1, pods={"default/app": PodReport(uid=uid, status=None, version=9)})
        await node.raw("podstatus", gone.model_dump_json().encode())
        await stack.wait("pod/app", "delete")
        await node.wait_ack("podstatus", 1)

        # A pod being deleted that its node does not hold is finished at its next hello.
        await stack.kubectl_run("delete", "pod", "unheld", "--wait=false")
        await wait_down(node, "pod", lambda b: b["op"] == "delete" and b["key"] == "default/unheld")
        del held["default/unheld"], held["default/app"]
        await node.hello(pods=held)
        await stack.wait("pod/unheld", "delete")


async def test_pods_bound_to_a_node_that_runs_none_say_so_in_an_event(stack: CloudStack) -> None:
    await stack.apply(pod_yaml("app", "node-a"))
    cloud = await stack.start_cloud()
    async with stack.peer("node-a") as node:
        sync = await node.hello()  # pods=None: this node runs no pods
        assert sync.pods == []
        async with asyncio.timeout(TIMEOUT):
            await cloud.recorder.wait_written("NodeRunsNoPods", "app")
    described = await stack.kubectl_run("describe", "pod", "app")
    assert "NodeRunsNoPods" in described and "--pods" in described


class LogPeer:
    """Answers the node's ``down/logs`` requests with a script."""

    def __init__(self, node: NodePeer, answers: dict[str, list[LogChunk]]) -> None:
        self.node = node
        self.answers = answers
        self.requests: list[LogRequest] = []

    async def run(self) -> None:
        after = 0
        while True:
            index, message = await self.node.other_message(
                lambda m: m.topic.endswith("/down/logs"), after=after, timeout=3600
            )
            await self._answer(message)
            after = index + 1

    async def _answer(self, message: Message) -> None:
        request = LogRequest.model_validate_json(message.payload)
        self.requests.append(request)
        if request.op != "open":
            return
        for chunk in self.answers.get(request.container, []):
            answer = chunk.model_copy(update={"id": request.id})
            await self.node.client.publish_confirmed(
                reply_topic(self.node.node, request.reply_to), answer.model_dump_json()
            )


async def test_a_pods_log_comes_from_its_node_in_order_and_a_refusal_says_why(stack: CloudStack) -> None:
    from cloud_sync import LogQuery

    await stack.apply(pod_yaml("app", "node-a"))
    cloud = await stack.start_cloud()
    cloud.pods.logs.answer_timeout = 2.0
    answers = {
        "app": [
            LogChunk.of("", 1, b"second\n"),
            LogChunk.of("", 0, b"first\n"),
            LogChunk.of("", 2, end=True),
        ],
        "waiting": [LogChunk.of("", 0, end=True, error='container "waiting" is waiting to start')],
    }
    async with stack.peer("node-a") as node:
        await node.hello(pods={})
        peer = LogPeer(node, answers)
        answering = asyncio.create_task(peer.run())
        try:
            text = b"".join(
                [c async for c in cloud.pods.pod_logs("default", "app", LogQuery(container="app", tail=5))]
            )
            assert text == b"first\nsecond\n"
            assert peer.requests[0].tail == 5 and peer.requests[0].reply_to == cloud.settings.replica
            with pytest.raises(LookupError, match="is waiting to start"):
                async for _ in cloud.pods.pod_logs("default", "app", LogQuery(container="waiting")):
                    pass
            with pytest.raises(TimeoutError, match="did not answer"):
                async for _ in cloud.pods.pod_logs("default", "app", LogQuery(container="silent")):
                    pass
            with pytest.raises(LookupError, match="not bound to an edge node"):
                async for _ in cloud.pods.pod_logs("default", "nope", LogQuery(container="app")):
                    pass
            # The node is told to give up the stream it never answered.
            _, close = await node.other_message(lambda m: b'"close"' in m.payload)
            assert LogRequest.model_validate_json(close.payload).container == "silent"
        finally:
            answering.cancel()
