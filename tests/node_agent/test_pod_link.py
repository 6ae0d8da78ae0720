"""The pods' part of the node's link, without a broker: what it publishes for what the cloud says.

A real ``PodManager`` (the ``process`` runtime) runs the pods; the link's publish function is a
recorder of the messages it would send, so each test sees exactly the bodies on each topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from node_agent.metrics import NodeMetrics
from node_agent.pod_link import REVISION_ANNOTATION, PodLink
from node_agent.pod_uplink import PodUplink
from node_agent.pods import PodClock, PodManager, PodSettings, PodStatus
from tests.fixtures.pods import SCALE, Pods
from twin.link import Ack, Sync
from twin.link_pods import LogChunk, LogRequest, PodAssignment, PodChange, PodStatusReport, reply_topic

NODE = "edge-7"


class Published:
    """What the link publishes, by topic kind; ``up`` says whether the link is up."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.up = True
        self._changed = asyncio.Event()

    def __call__(self, topic: str, payload: bytes) -> bool:
        if not self.up:
            return False
        self.messages.append((topic, payload))
        self._changed.set()
        return True

    def statuses(self) -> list[PodStatusReport]:
        return [
            PodStatusReport.model_validate_json(p) for t, p in self.messages if t.endswith("/up/podstatus")
        ]

    def chunks(self) -> list[LogChunk]:
        return [
            LogChunk.model_validate_json(p) for t, p in self.messages if t == reply_topic(NODE, "replica-1")
        ]

    async def wait_for(self, condition: Callable[[], bool], timeout: float = 30.0) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                self._changed.clear()
                await self._changed.wait()


def assignment(name: str, script: str = "sleep 1000", revision: str = "r1", **spec: Any) -> PodAssignment:
    container = {"name": "app", "image": "none", "command": ["sh", "-c", script]}
    pod = {
        "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"},
        "spec": {"nodeName": NODE, "containers": [container], "terminationGracePeriodSeconds": 1, **spec},
    }
    return PodAssignment(pod=pod, revision=revision)


@contextlib.asynccontextmanager
async def running_link(tmp_path: Path, published: Published) -> AsyncIterator[tuple[PodLink, Pods]]:
    manager = PodManager(NODE, tmp_path, PodSettings(host_ip="127.0.0.1"), clock=PodClock(SCALE))
    link = PodLink(manager, resend=0.2, metrics=NodeMetrics(NODE))
    pods = Pods()
    manager.add_listener(link.status_listener)
    manager.add_listener(pods)
    seq = itertools.count(1)
    link.attach(published, lambda: next(seq))
    tasks = [asyncio.create_task(manager.run()), asyncio.create_task(link.run())]
    try:
        await link.ready()
        link.link_up()
        yield link, pods
    finally:
        for task in reversed(tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@pytest.fixture
def published() -> Published:
    return Published()


async def test_a_synced_pod_runs_and_its_status_goes_up_until_acknowledged(
    tmp_path: Path, published: Published
) -> None:
    async with running_link(tmp_path, published) as (link, pods):
        link.synced(Sync(hello="h", pods=[assignment("app")]))
        await pods.wait_for("default/app", lambda s: s.phase == "Running")
        assert link.held()["default/app"].revision == "r1"
        stored = link.manager.held()["default/app"]
        assert stored.pod.metadata.annotations[REVISION_ANNOTATION] == "r1"

        def running_sent() -> bool:
            return any(
                (r.pods.get("default/app") and (r.pods["default/app"].status or {}).get("phase") == "Running")
                for r in published.statuses()
            )

        await published.wait_for(running_sent)
        first = published.statuses()[-1]
        # Not acknowledged: the same status goes again, in another message, after the resend delay.
        await published.wait_for(
            lambda: any(r.seq != first.seq and r.pods == first.pods for r in published.statuses())
        )
        for report in published.statuses():
            link.acknowledged(Ack(kind="podstatus", seq=report.seq))
        assert link.uplink.owed() == {}


async def test_statuses_are_coalesced_per_pod_while_the_link_is_down(
    tmp_path: Path, published: Published
) -> None:
    uplink = PodUplink(NODE, resend=60.0, metrics=NodeMetrics(NODE))
    seq = itertools.count(1)
    uplink.attach(published, lambda: next(seq))
    published.up = False
    for phase in ("Pending", "Running", "Failed"):
        uplink.changed("default/app", "u1", PodStatus(phase=phase))  # type: ignore[arg-type]
    sender = asyncio.create_task(uplink.run())
    try:
        published.up = True
        uplink.link_up()
        await published.wait_for(lambda: bool(published.statuses()))
        (report,) = published.statuses()
        assert report.pods["default/app"].status == {
            "phase": "Failed",
            "conditions": [],
            "containerStatuses": [],
        }
        uplink.changed("default/app", "u1", None)
        await published.wait_for(lambda: len(published.statuses()) == 2)
        gone = published.statuses()[1]
        assert gone.pods["default/app"].status is None
        assert gone.pods["default/app"].version > report.pods["default/app"].version
        uplink.acknowledged(Ack(kind="podstatus", seq=report.seq))
        assert "default/app" in uplink.owed()  # the newer "gone" is still owed
        uplink.acknowledged(Ack(kind="podstatus", seq=gone.seq))
        assert uplink.owed() == {}
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender


async def test_a_pod_the_node_cannot_read_is_rejected_with_the_fields_named_and_the_others_run(
    tmp_path: Path, published: Published
) -> None:
    async with running_link(tmp_path, published) as (link, pods):
        bad = assignment("bad", terminationGracePeriodSeconds="soon")
        link.synced(Sync(hello="h", pods=[bad, assignment("good")]))
        await pods.wait_for("default/good", lambda s: s.phase == "Running")

        def rejected() -> dict[str, Any] | None:
            for report in published.statuses():
                status = report.pods.get("default/bad")
                if status is not None and status.status is not None:
                    return status.status
            return None

        await published.wait_for(lambda: rejected() is not None)
        status = rejected()
        assert status is not None
        assert status["phase"] == "Failed" and status["reason"] == "InvalidPodSpec"
        assert "terminationGracePeriodSeconds" in status["message"]
        assert link.held()["default/bad"].revision == "r1"  # named in hellos: not sent again
        link.change(PodChange(op="delete", key="default/bad", uid="uid-bad"))
        await published.wait_for(
            lambda: any(
                r.pods.get("default/bad") and r.pods["default/bad"].status is None
                for r in published.statuses()
            )
        )
        assert "default/bad" not in link.held()


async def test_a_delete_for_another_uid_leaves_the_pod_running(tmp_path: Path, published: Published) -> None:
    async with running_link(tmp_path, published) as (link, pods):
        link.change(PodChange(op="upsert", assignment=assignment("app")))
        await pods.wait_for("default/app", lambda s: s.phase == "Running")
        link.change(PodChange(op="delete", key="default/app", uid="an-older-pod"))
        link.change(PodChange(op="upsert", assignment=assignment("app", revision="r2")))
        stored = link.manager.held
        await published.wait_for(
            lambda: stored()["default/app"].pod.metadata.annotations[REVISION_ANNOTATION] == "r2"
        )
        assert link.manager.status("default/app").phase == "Running"  # type: ignore[union-attr]


async def test_logs_are_served_in_order_limited_and_too_many_streams_are_refused(
    tmp_path: Path, published: Published
) -> None:
    async with running_link(tmp_path, published) as (link, pods):
        script = "for i in $(seq 1 2000); do echo line $i; done; sleep 1000"
        link.change(PodChange(op="upsert", assignment=assignment("chatty", script)))
        await pods.wait_for("default/chatty", lambda s: s.phase == "Running")
        async with contextlib.aclosing(link.manager.logs("default/chatty", follow=True)) as lines:
            async for line in lines:
                if line == b"line 2000\n":
                    break
        link.request_logs(LogRequest(id="all", reply_to="replica-1", pod="default/chatty", uid="uid-chatty"))
        await published.wait_for(lambda: any(c.id == "all" and c.end for c in published.chunks()))
        chunks = sorted((c for c in published.chunks() if c.id == "all"), key=lambda c: c.seq)
        assert [c.seq for c in chunks] == list(range(len(chunks)))
        text = b"".join(c.content for c in chunks).decode()
        assert text.splitlines() == [f"line {i}" for i in range(1, 2001)]
        assert chunks[-1].error is None

        link.request_logs(LogRequest(id="some", reply_to="replica-1", pod="default/chatty", limit_bytes=12))
        await published.wait_for(lambda: any(c.id == "some" and c.end for c in published.chunks()))
        assert b"".join(c.content for c in published.chunks() if c.id == "some") == b"line 1\nline "

        link.request_logs(
            LogRequest(id="other", reply_to="replica-1", pod="default/chatty", uid="not-this-one")
        )
        await published.wait_for(lambda: any(c.id == "other" and c.end for c in published.chunks()))
        (refused,) = [c for c in published.chunks() if c.id == "other"]
        assert refused.error == f"pod default/chatty is not on node {NODE}"

        link.logs.max_streams = 1
        link.request_logs(
            LogRequest(id="f1", reply_to="replica-1", pod="default/chatty", follow=True, tail=0)
        )
        await published.wait_for(lambda: any(c.id == "f1" for c in published.chunks()))  # open, nothing yet
        link.request_logs(LogRequest(id="f2", reply_to="replica-1", pod="default/chatty", follow=True))
        await published.wait_for(lambda: any(c.id == "f2" and c.end for c in published.chunks()))
        (too_many,) = [c for c in published.chunks() if c.id == "f2"]
        assert too_many.error is not None and "1 log streams already" in too_many.error
        link.request_logs(LogRequest(id="f1", op="close", reply_to="replica-1"))
        async with asyncio.timeout(30):
            await link.logs.idle.wait()
