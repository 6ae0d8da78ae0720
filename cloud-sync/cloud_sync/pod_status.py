"""What the nodes report of their pods, into the pods' status; a deleted pod finished once it stopped.

``offer`` takes an ``up/podstatus``. Each pod has one writer at a time and only its latest report
waits (reports carry a version that grows per pod): a pod that changes ten times while a write is
in flight is written twice, not eleven times. A write is a merge patch of ``pods/{name}/status``
(``pod_objects.status_patch``: the fields the node owns, and the conditions it reports) carrying
the pod's uid as a precondition, and is skipped when the status says so already. A report for a
pod that is gone, of another uid, or bound to another node is dropped (logged once).

``status: null`` means the pod is gone from the node: a pod being deleted (``deletionTimestamp``) is
then deleted for good with grace 0 and a uid precondition, as the kubelet does once it has
stopped a pod's containers.

Every report is acknowledged (``down/ack``) once each of its pods is written or dropped: 429, 5xx
and no answer are retried with back-off, nothing acknowledged meanwhile (the node sends again).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from cloud_sync.errors import ApiConflict, ApiError, ApiNotFound, ApiUnavailable
from cloud_sync.kube import MERGE_PATCH, KubeApi, Obj
from cloud_sync.metrics import Metrics
from cloud_sync.pod_objects import is_terminating, node_of, status_patch, uid_of
from cloud_sync.pods import PodInventory
from cloud_sync.recorder import Recorder
from cloud_sync.reports import Ticket
from cloud_sync.resources import PODS
from cloud_sync.retry import DELAYS, Backoff
from cloud_sync.writers import KeyedWriters
from twin.link import Ack
from twin.link_pods import PodReport, PodStatusReport

__all__ = ["PodStatusWriter"]

log = logging.getLogger(__name__)


@dataclass
class _Pending:
    node: str
    report: PodReport
    tickets: list[Ticket] = field(default_factory=list)


class PodStatusWriter(KeyedWriters):
    what = "pod status"

    def __init__(
        self,
        api: KubeApi,
        inventory: PodInventory,
        send_ack: Callable[[str, Ack], None],
        metrics: Metrics,
        recorder: Recorder,
        *,
        delays: tuple[float, ...] = DELAYS,
    ) -> None:
        super().__init__()
        self.api = api
        self.inventory = inventory
        self.send_ack = send_ack
        self.metrics = metrics
        self.recorder = recorder
        self.delays = delays
        self._pending: dict[str, _Pending] = {}
        self._tickets: dict[tuple[str, int], Ticket] = {}
        #: Per pod: the uid and version last written, and the resourceVersion our write was made
        #: from with the object the API answered (newer than the watch's until it catches up).
        self._written: dict[str, tuple[str, int, str, Obj]] = {}
        self._warned: set[str] = set()
        self._finishing: set[tuple[str, str]] = set()

    # -- input ---------------------------------------------------------------------------------------

    def offer(self, node: str, message: PodStatusReport) -> None:
        ticket = self._tickets.setdefault((node, message.seq), Ticket(node, "podstatus", message.seq, set()))
        for key, report in message.pods.items():
            pending = self._pending.get(key)
            if pending is None:
                pending = self._pending[key] = _Pending(node, report)
            elif report.version >= pending.report.version:
                pending.node, pending.report = node, report
            pending.tickets.append(ticket)
            ticket.remaining.add(key)
            self._schedule(key)
        if not ticket.remaining:
            self._done(ticket)

    def finish(self, key: str, uid: str) -> None:
        """Delete a terminating pod for good: its node no longer holds it."""
        if (key, uid) in self._finishing or self._group is None:
            return
        self._finishing.add((key, uid))
        self._group.create_task(self._finish(key, uid), name=f"finish pod {key}")

    # -- scheduling ----------------------------------------------------------------------------------

    async def _flush(self, key: str) -> None:
        backoff = Backoff(self.delays)
        try:
            while (pending := self._pending.get(key)) is not None:
                report, tickets = pending.report, list(pending.tickets)
                try:
                    await self._write(key, pending.node, report)
                except ApiConflict:
                    continue
                except ApiUnavailable as exc:
                    delay = backoff.next()
                    log.warning("pod status not written: pod=%s error=%s retry_in=%.1fs", key, exc, delay)
                    await asyncio.sleep(delay)
                    continue
                backoff.reset()
                if pending.report is report:
                    del self._pending[key]
                else:
                    pending.tickets = [t for t in pending.tickets if t not in tickets]
                for ticket in tickets:
                    ticket.remaining.discard(key)
                    if not ticket.remaining:
                        self._done(ticket)
        except Exception:
            log.exception("writing the status of pod %s failed; dropped unacknowledged, to come again", key)
            dropped = self._pending.pop(key, None)
            for ticket in dropped.tickets if dropped is not None else []:
                ticket.failed = True
                self._tickets.pop((ticket.node, ticket.seq), None)
        finally:
            self._tasks.pop(key, None)

    def _done(self, ticket: Ticket) -> None:
        if ticket.failed:
            return
        self._tickets.pop((ticket.node, ticket.seq), None)
        self.send_ack(ticket.node, Ack(kind="podstatus", seq=ticket.seq))

    # -- one write -------------------------------------------------------------------------------------

    def _latest(self, key: str) -> Obj | None:
        cached = self.inventory.pods.get(key)
        written = self._written.get(key)
        version = (cached or {}).get("metadata", {}).get("resourceVersion")
        if cached is not None and written is not None and version == written[2]:
            return written[3]  # the watch has not shown our write yet
        return cached

    async def _write(self, key: str, node: str, report: PodReport) -> None:
        namespace, _, name = key.partition("/")
        pod = self._latest(key)
        if pod is None:
            try:
                pod = await self.api.get(PODS.path(namespace, name))
            except ApiNotFound:
                log.debug("pod %s is gone; dropping what %s reported of it", key, node)
                return
        if node_of(pod) != node or uid_of(pod) != report.uid:
            self._warn_once(key, f"node {node} reported pod {key} uid {report.uid}, which is not bound to it")
            return
        if report.status is None:
            if is_terminating(pod):
                await self._delete(key, report.uid)
            return
        written = self._written.get(key)
        if written is not None and written[0] == report.uid and written[1] >= report.version:
            return  # a late resend: a newer status is in already
        patch = status_patch(pod.get("status"), report.status)
        if patch is None:
            return
        version = str((pod.get("metadata") or {}).get("resourceVersion", ""))
        body = {"metadata": {"uid": report.uid}, "status": patch}
        try:
            answer = await self.api.call(
                "PATCH", PODS.path(namespace, name, "status"), body=body, content_type=MERGE_PATCH
            )
        except ApiNotFound:
            return
        except (ApiConflict, ApiUnavailable) as exc:
            self.metrics.api_errors.labels("pods/status", str(exc.status)).inc()
            raise
        except ApiError as exc:
            self.metrics.api_errors.labels("pods/status", str(exc.status)).inc()
            log.error("the API refuses the status of pod %s: %s; dropped", key, exc)  # noqa: TRY400
            self.recorder.record(
                {**pod, "apiVersion": "v1", "kind": "Pod"},
                "StatusRefused",
                f"the status cloud-sync wrote was refused: {exc}",
            )
            return
        self.metrics.api_writes.labels("pods/status").inc()
        self._written[key] = (report.uid, report.version, version, answer)

    async def _delete(self, key: str, uid: str) -> None:
        namespace, _, name = key.partition("/")
        body = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": uid},
        }
        try:
            await self.api.call("DELETE", PODS.path(namespace, name), body=body)
        except ApiNotFound:
            return
        except ApiConflict:
            return  # another pod of that name now: not ours to delete
        self.metrics.api_writes.labels("pods").inc()
        self._written.pop(key, None)
        log.info("pod deleted: pod=%s uid=%s (its node stopped it)", key, uid)

    async def _finish(self, key: str, uid: str) -> None:
        backoff = Backoff(self.delays)
        try:
            while True:
                try:
                    await self._delete(key, uid)
                    return
                except ApiUnavailable as exc:
                    delay = backoff.next()
                    log.warning("pod not deleted: pod=%s error=%s retry_in=%.1fs", key, exc, delay)
                    await asyncio.sleep(delay)
                except ApiError as exc:
                    log.error("the API refuses to delete pod %s: %s", key, exc)  # noqa: TRY400
                    return
        finally:
            self._finishing.discard((key, uid))

    def _warn_once(self, key: str, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            log.warning("%s; dropped", message)
