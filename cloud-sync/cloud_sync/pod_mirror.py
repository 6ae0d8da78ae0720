"""Pods down to their nodes: the pods' part of the answer to a hello, and a ``down/pod`` for every change.

A node that runs pods names in its hello every pod it holds with its uid and revision; the sync
that answers carries the pods bound to it that it lacks or holds in another revision or uid, and
the keys of those it holds that are no longer bound to it or are being deleted. A node that is up
to date gets no pods at all. A node that runs no pods (its hello has no ``pods``) is sent none, and
each pod bound to it gets an Event saying so, once.

While the link is up, every placement change becomes a ``PodChange``: ``upsert`` for a new pod or
revision, ``delete`` (with the uid, and the grace period of the deletion) when its deletion begins
or it is gone. Changes go only to edge nodes (``is_edge``): a pod bound to an ordinary node of a
cluster is none of cloud-sync's business. A pod being deleted that its node does not hold (it never
arrived, or the node dropped it while offline) is finished at once (``finish``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from pydantic import BaseModel

from cloud_sync.pods import PodInventory, PodPlacement
from cloud_sync.recorder import Recorder
from twin.link import DownKind, Hello
from twin.link_pods import HeldPod, PodAssignment, PodChange

__all__ = ["PodMirror"]

log = logging.getLogger(__name__)


def _differs(held: HeldPod | None, placement: PodPlacement) -> bool:
    return held is None or held.uid != placement.uid or held.revision != placement.assignment.revision


class PodMirror:
    def __init__(
        self,
        inventory: PodInventory,
        send: Callable[[str, DownKind, BaseModel], None],
        recorder: Recorder,
        *,
        is_edge: Callable[[str], bool],
        finish: Callable[[str, str], None],
    ) -> None:
        self.inventory = inventory
        self.send = send
        self.recorder = recorder
        self.is_edge = is_edge
        #: Deletes a terminating pod for good (its key and uid): its node holds it no more.
        self.finish = finish
        #: Changes are sent once the link is up; before, nodes learn everything from their hellos.
        self.live = False
        #: Nodes whose latest hello said they run pods / run none.
        self.runs_pods: set[str] = set()
        self.no_pods: set[str] = set()
        self._told: set[str] = set()

    def answer(self, node: str, hello: Hello) -> tuple[list[PodAssignment], list[str]]:
        """The pods and the removed pods' keys of the sync answering ``hello``."""
        placements = self.inventory.pods_of(node)
        if hello.pods is None:
            self.runs_pods.discard(node)
            self.no_pods.add(node)
            for placement in placements:
                self._tell_no_pods(placement)
            return [], []
        self.no_pods.discard(node)
        self.runs_pods.add(node)
        bound = {p.key: p for p in placements if not p.terminating}
        sent = [p.assignment for key, p in bound.items() if _differs(hello.pods.get(key), p)]
        removed = sorted(key for key in hello.pods if key not in bound)
        for placement in placements:
            if placement.terminating and placement.key not in hello.pods:
                self.finish(placement.key, placement.uid)
        if sent or removed:
            log.info(
                "pods answered: node=%s hello=%s held=%d sent=%d removed=%d",
                node,
                hello.id,
                len(hello.pods),
                len(sent),
                len(removed),
            )
        return sent, removed

    def on_placement(self, key: str, before: PodPlacement | None, after: PodPlacement | None) -> None:
        if not self.live:
            return
        if after is not None and after.node in self.no_pods:
            self._tell_no_pods(after)
            return
        gone = after is None or after.terminating
        if gone and before is not None and not before.terminating and self.is_edge(before.node):
            grace = after.grace if after is not None else 0
            self.send(before.node, "pod", PodChange(op="delete", key=key, uid=before.uid, grace=grace))
        if after is not None and not after.terminating and self.is_edge(after.node):
            self.send(after.node, "pod", PodChange(op="upsert", assignment=after.assignment))

    def resend(self, nodes: Iterable[str]) -> int:
        """Send every pod of ``nodes`` again (at start: what changed while no replica ran)."""
        sent = 0
        for node in nodes:
            for placement in self.inventory.pods_of(node):
                if placement.terminating:
                    change = PodChange(
                        op="delete", key=placement.key, uid=placement.uid, grace=placement.grace
                    )
                else:
                    change = PodChange(op="upsert", assignment=placement.assignment)
                self.send(node, "pod", change)
                sent += 1
        return sent

    def _tell_no_pods(self, placement: PodPlacement) -> None:
        if placement.uid in self._told:
            return
        self._told.add(placement.uid)
        log.warning(
            "pod %s is bound to node %s, which runs no pods (edgetwin node --pods)",
            placement.key,
            placement.node,
        )
        pod = self.inventory.pods.get(placement.key) or {}
        self.recorder.record(
            {**pod, "apiVersion": "v1", "kind": "Pod"},
            "NodeRunsNoPods",
            f"node {placement.node} runs no pods: start its agent with --pods to run this pod there",
        )
