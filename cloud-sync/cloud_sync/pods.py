"""Which pods each node runs, and what it is sent for each: the pods' part of cloud-sync's inventory.

The watches of bound pods (``spec.nodeName`` set), ConfigMaps and Secrets feed this. For each bound
pod it keeps a ``PodPlacement``: its node, uid, the ``PodAssignment`` the node gets (the pod with the
ConfigMaps and Secrets it names, and a revision), and whether it is being deleted (a
``deletionTimestamp``: the node stops it, then cloud-sync deletes it for good). A ConfigMap or
Secret that changes, appears or goes changes the placement of every pod that names it.

Listeners hear of every placement that changed in a way its node must learn of: a new revision, a
deletion begun, the pod gone. A status write (cloud-sync's own, one per pod change on the node)
changes none of these: the revision leaves the status and ``resourceVersion`` out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from cloud_sync.kube import Obj
from cloud_sync.pod_objects import assignment, is_terminating, node_of, pod_key, references, uid_of
from cloud_sync.watches import object_key
from twin.link_pods import PodAssignment

__all__ = ["PodInventory", "PodListener", "PodPlacement"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PodPlacement:
    key: str
    node: str
    uid: str
    assignment: PodAssignment
    terminating: bool
    #: Seconds the node gives the containers to stop, for a pod being deleted.
    grace: int | None

    def same_for_node(self, other: PodPlacement | None) -> bool:
        return (
            other is not None
            and self.node == other.node
            and self.uid == other.uid
            and self.assignment.revision == other.assignment.revision
            and self.terminating == other.terminating
        )


#: Called with the pod's key, its placement before (``None``: new) and after (``None``: gone).
PodListener = Callable[[str, PodPlacement | None, PodPlacement | None], None]


class PodInventory:
    def __init__(self) -> None:
        self.pods: dict[str, Obj] = {}  # bound pods as watched, status included
        self.config_maps: dict[str, Obj] = {}
        self.secrets: dict[str, Obj] = {}
        self.placements: dict[str, PodPlacement] = {}
        self._by_node: dict[str, set[str]] = {}
        #: ``("configmaps"|"secrets", namespace/name)`` -> keys of the pods that name it.
        self._users: dict[tuple[str, str], set[str]] = {}
        self._uses: dict[str, set[tuple[str, str]]] = {}
        self.listeners: list[PodListener] = []

    # -- queries --------------------------------------------------------------------------------------

    def pods_of(self, node: str) -> list[PodPlacement]:
        return [self.placements[key] for key in sorted(self._by_node.get(node, ()))]

    def count_on(self, node: str) -> int:
        """Pods bound to ``node`` that are not finished (what counts against its ``pods`` capacity)."""
        return sum(
            1
            for key in self._by_node.get(node, ())
            if ((self.pods.get(key) or {}).get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        )

    # -- watch handlers ------------------------------------------------------------------------------

    def on_pod(self, kind: str, obj: Obj, old: Obj | None) -> None:
        key = pod_key(obj)
        if kind == "DELETED" or not node_of(obj):
            self.pods.pop(key, None)
            self._forget(key)
            return
        self.pods[key] = obj
        self._index_uses(key, obj)
        self._update(key)

    def on_config_map(self, kind: str, obj: Obj, old: Obj | None) -> None:
        self._on_source("configmaps", self.config_maps, kind, obj)

    def on_secret(self, kind: str, obj: Obj, old: Obj | None) -> None:
        self._on_source("secrets", self.secrets, kind, obj)

    def _on_source(self, kind_name: str, cache: dict[str, Obj], kind: str, obj: Obj) -> None:
        key = object_key(obj)
        if kind == "DELETED":
            cache.pop(key, None)
        else:
            cache[key] = obj
        for pod in sorted(self._users.get((kind_name, key), ())):
            self._update(pod)

    # -- placements ----------------------------------------------------------------------------------

    def _index_uses(self, key: str, pod: Obj) -> None:
        namespace = (pod.get("metadata") or {}).get("namespace") or "default"
        config_maps, secrets = references(pod)
        uses = {("configmaps", f"{namespace}/{n}") for n in config_maps}
        uses |= {("secrets", f"{namespace}/{n}") for n in secrets}
        for source in self._uses.get(key, set()) - uses:
            self._users.get(source, set()).discard(key)
        for source in uses:
            self._users.setdefault(source, set()).add(key)
        self._uses[key] = uses

    def _update(self, key: str) -> None:
        pod = self.pods.get(key)
        if pod is None:
            return
        before = self.placements.get(key)
        grace = (pod.get("metadata") or {}).get("deletionGracePeriodSeconds")
        after = PodPlacement(
            key=key,
            node=node_of(pod),
            uid=uid_of(pod),
            assignment=assignment(pod, self.config_maps, self.secrets),
            terminating=is_terminating(pod),
            grace=grace if isinstance(grace, int) and grace >= 0 else None,
        )
        if before is not None and before.node != after.node:
            self._by_node.get(before.node, set()).discard(key)
        self.placements[key] = after
        self._by_node.setdefault(after.node, set()).add(key)
        if not after.same_for_node(before):
            self._tell(key, before, after)

    def _forget(self, key: str) -> None:
        before = self.placements.pop(key, None)
        for source in self._uses.pop(key, set()):
            self._users.get(source, set()).discard(key)
        if before is not None:
            self._by_node.get(before.node, set()).discard(key)
            self._tell(key, before, None)

    def _tell(self, key: str, before: PodPlacement | None, after: PodPlacement | None) -> None:
        for listener in self.listeners:
            try:
                listener(key, before, after)
            except Exception:
                log.exception("a listener of pod %s failed", key)
