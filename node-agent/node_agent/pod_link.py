"""The pods' part of the node's cloud link: pods from the cloud into the pod manager, statuses and
logs back (docs/cloud-link.md, "Pods").

``CloudLink`` hosts a ``PodLink`` when the node runs pods. The hello names every pod the node holds
with its uid and the ``revision`` of the assignment it came in (kept on the stored pod as the
annotation ``node.edgetwin.io/pod-revision``), so a reconnect exchanges only what changed; the
sync's pods and ``removed_pods``, and every ``down/pod`` after it, are applied to the pod manager.

Each pod has a worker of its own applying the latest change asked for it: stopping a pod may take
its whole grace period, and must hold up neither the link nor the other pods. A pod the node cannot
even read (a malformed spec, a field of the wrong type) is not half-run: it gets a ``Failed``
status with reason ``InvalidPodSpec`` naming the fields, and stays named in hellos until the cloud
sends another revision or deletes it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import ValidationError

from node_agent.metrics import NodeMetrics
from node_agent.pod_logs import LogServer
from node_agent.pod_uplink import PodUplink
from node_agent.pods import BoundPod, PodManager, PodStatus
from node_agent.pods.status import rejected_status
from twin.link import Ack, Sync
from twin.link_pods import HeldPod, LogRequest, PodAssignment, PodChange

__all__ = ["REVISION_ANNOTATION", "PodLink", "bound_pod"]

log = logging.getLogger(__name__)

#: Where the node keeps the ``revision`` of the assignment a pod came in.
REVISION_ANNOTATION = "node.edgetwin.io/pod-revision"


@dataclass(frozen=True)
class _Put:
    assignment: PodAssignment


@dataclass(frozen=True)
class _Delete:
    uid: str
    grace: int | None


def bound_pod(assignment: PodAssignment) -> BoundPod:
    """The pod as the manager stores it, with its revision; ``ValidationError`` if it cannot be read."""
    pod = dict(assignment.pod)
    metadata = dict(pod.get("metadata") or {})
    annotations = dict(metadata.get("annotations") or {})
    annotations[REVISION_ANNOTATION] = assignment.revision
    metadata["annotations"] = annotations
    pod["metadata"] = metadata
    pod.pop("status", None)
    return BoundPod.model_validate(
        {"pod": pod, "configMaps": assignment.config_maps, "secrets": assignment.secrets}
    )


def _problems(exc: ValidationError) -> str:
    found = []
    for error in exc.errors()[:5]:
        where = ".".join(str(part) for part in error["loc"])
        found.append(f"{where.removeprefix('pod.')}: {error['msg']}")
    return "; ".join(found)


class PodLink:
    def __init__(self, manager: PodManager, *, resend: float, metrics: NodeMetrics) -> None:
        self.manager = manager
        self.node = manager.node
        self.metrics = metrics
        self.uplink = PodUplink(self.node, resend=resend, metrics=metrics)
        self.logs = LogServer(manager, self.node, metrics)
        self._pending: dict[str, _Put | _Delete] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._group: asyncio.TaskGroup | None = None
        #: Pods the node could not read, by key: named in hellos so that they are not sent again.
        self._invalid: dict[str, HeldPod] = {}

    @property
    def runtime_version(self) -> str:
        """``containerRuntimeVersion`` of the node's status: ``process://edgetwin`` or ``podman://``."""
        return f"{self.manager.runtime.name}://edgetwin"

    def attach(self, publish: Callable[[str, bytes], bool], next_seq: Callable[[], int]) -> None:
        self.uplink.attach(publish, next_seq)
        self.logs.attach(publish)

    def status_listener(self, key: str, uid: str, status: PodStatus | None) -> None:
        """Plugged into the pod manager's ``on_status`` (through the gateway)."""
        self.uplink.changed(key, uid, status)

    async def ready(self) -> None:
        """Until the pod manager has brought back its stored pods: before that a hello would lie."""
        await self.manager.ready.wait()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            self._group = group
            group.create_task(self.uplink.run(), name=f"pod statuses of {self.node}")
            group.create_task(self.logs.run(), name=f"pod logs of {self.node}")
            for key in list(self._pending):
                self._start_worker(key)
            try:
                await asyncio.Event().wait()
            finally:
                self._group = None

    # -- what the link says -------------------------------------------------------------------------------

    def held(self) -> dict[str, HeldPod]:
        """The pods the node holds, as they will be once the pending changes are applied."""
        held = {
            key: HeldPod(
                uid=bound.pod.metadata.uid,
                revision=bound.pod.metadata.annotations.get(REVISION_ANNOTATION, ""),
            )
            for key, bound in self.manager.held().items()
        }
        held.update(self._invalid)
        for key, op in self._pending.items():
            if isinstance(op, _Put):
                held[key] = HeldPod(uid=op.assignment.uid, revision=op.assignment.revision)
            else:
                held.pop(key, None)
        return held

    def synced(self, sync: Sync) -> None:
        for assignment in sync.pods:
            self._upsert(assignment)
        for key in sync.removed_pods:
            self._schedule(key, _Delete(uid="", grace=None))
        if sync.pods or sync.removed_pods:
            log.info(
                "cloud link: node=%s pods changed=%d removed=%d",
                self.node,
                len(sync.pods),
                len(sync.removed_pods),
            )

    def change(self, change: PodChange) -> None:
        if change.op == "upsert" and change.assignment is not None:
            self._upsert(change.assignment)
        elif change.op == "delete" and change.key:
            self._schedule(change.key, _Delete(uid=change.uid, grace=change.grace))
        else:
            missing = "assignment" if change.op == "upsert" else "key"
            log.warning("cloud link: a down/pod %s without its %s: ignored", change.op, missing)
            self.metrics.refused.labels("pod").inc()

    def request_logs(self, request: LogRequest) -> None:
        self.logs.request(request)

    def acknowledged(self, ack: Ack) -> None:
        self.uplink.acknowledged(ack)

    def link_up(self) -> None:
        self.uplink.link_up()

    def link_down(self) -> None:
        self.uplink.link_down()

    # -- applying -------------------------------------------------------------------------------------------

    def _upsert(self, assignment: PodAssignment) -> None:
        key = assignment.key
        if not key:
            log.warning("cloud link: a pod without metadata.name: ignored")
            self.metrics.refused.labels("pod").inc()
            return
        spec = assignment.pod.get("spec")
        node = spec.get("nodeName") if isinstance(spec, dict) else None
        if node and node != self.node:
            log.warning("cloud link: pod %s is bound to node %s, not %s: ignored", key, node, self.node)
            self.metrics.refused.labels("pod").inc()
            return
        self._schedule(key, _Put(assignment))

    def _schedule(self, key: str, op: _Put | _Delete) -> None:
        self._pending[key] = op
        if key not in self._workers and self._group is not None:
            self._start_worker(key)

    def _start_worker(self, key: str) -> None:
        assert self._group is not None
        self._workers[key] = self._group.create_task(self._work(key), name=f"pod {key} from the cloud")

    async def _work(self, key: str) -> None:
        try:
            while (op := self._pending.get(key)) is not None:
                try:
                    if isinstance(op, _Put):
                        await self._put(key, op.assignment)
                    else:
                        await self._delete(key, op)
                except Exception:  # one pod's failure must not stop the others, nor the link
                    log.exception("applying the cloud's change of pod %s failed", key)
                finally:
                    # Removed only once applied, so that a hello meanwhile names what is coming.
                    if self._pending.get(key) is op:
                        del self._pending[key]
        finally:
            self._workers.pop(key, None)

    async def _put(self, key: str, assignment: PodAssignment) -> None:
        try:
            bound = bound_pod(assignment)
        except ValidationError as exc:
            await self._invalid_pod(key, assignment, _problems(exc))
            return
        if bound.pod.key != key:
            await self._invalid_pod(key, assignment, f"its key {bound.pod.key} is not {key}")
            return
        if self._invalid.pop(key, None) is not None:
            log.info("pod %s can be read again", key)
        await self.manager.put(bound)

    async def _invalid_pod(self, key: str, assignment: PodAssignment, problems: str) -> None:
        message = f"node {self.node} cannot read this pod: {problems}"
        log.error("pod %s rejected: %s", key, message)
        if key in self.manager.held():
            await self.manager.delete(key)
        status = rejected_status(
            "InvalidPodSpec", message, now=self.manager.clock.now(), host_ip=self.manager.settings.host_ip
        )
        self._invalid[key] = HeldPod(uid=assignment.uid, revision=assignment.revision)
        self.uplink.report(key, assignment.uid, status.to_kube())

    async def _delete(self, key: str, op: _Delete) -> None:
        invalid = self._invalid.get(key)
        if invalid is not None and (not op.uid or invalid.uid == op.uid):
            del self._invalid[key]
            self.uplink.report(key, invalid.uid, None)
            return
        bound = self.manager.held().get(key)
        if bound is None:
            if op.uid:
                self.uplink.report(key, op.uid, None)  # never here: gone, as far as this node goes
            return
        if op.uid and bound.pod.metadata.uid != op.uid:
            log.info(
                "cloud link: delete of pod %s uid %s, but the node holds uid %s: ignored",
                key,
                op.uid,
                bound.pod.metadata.uid,
            )
            return
        await self.manager.delete(key, grace=op.grace)
