"""A minimal binder for a cluster without a scheduler: pods with a ``nodeSelector`` onto Ready edge nodes.

The embedded API server has no kube-scheduler, so a pod that names no ``spec.nodeName`` would stay
``Pending`` for ever. With the binder on (``CloudSyncSettings.binder``; ``edgetwin cloud`` turns it
on when it starts the embedded API server), cloud-sync binds such a pod through the pods' ``binding``
subresource, as kube-scheduler does, when:

* it is ``Pending``, not being deleted, and asks for no other scheduler (``schedulerName`` empty or
  ``default-scheduler``);
* it has a non-empty ``nodeSelector`` (a pod that selects nothing is left alone: it may be meant
  for a scheduler yet to come) and no required ``nodeAffinity`` (not evaluated: such a pod gets a
  ``FailedScheduling`` Event saying so);
* some edge node is Ready, schedulable, carries every label of the selector, has no ``NoSchedule``
  or ``NoExecute`` taint the pod does not tolerate, and runs fewer unfinished pods than its
  ``allocatable.pods``. Of those, the one running the fewest pods is chosen (then by name).

A pod no node fits gets the condition ``PodScheduled`` = ``False`` (reason ``Unschedulable``) and a
``FailedScheduling`` Event saying why, as kube-scheduler reports it; a bound one a ``Scheduled``
Event. Resource requests, affinities, topology spread and preemption are not considered: this is no
scheduler, and on a real cluster kube-scheduler binds the pods and the binder stays off.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from cloud_sync.errors import ApiConflict, ApiError, ApiNotFound, ApiUnavailable
from cloud_sync.kube import MERGE_PATCH, KubeApi, Obj
from cloud_sync.metrics import Metrics
from cloud_sync.node_objects import rfc3339
from cloud_sync.pod_objects import is_terminating, node_of, pod_key, uid_of
from cloud_sync.recorder import Recorder
from cloud_sync.resources import PODS
from cloud_sync.retry import DELAYS, Backoff
from cloud_sync.watches import Watch

__all__ = ["Binder", "choose_node", "wants_binding"]

log = logging.getLogger(__name__)

_SCHEDULERS = ("", "default-scheduler")


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def wants_binding(pod: Obj) -> str | None:
    """Why the binder leaves ``pod`` alone (``None``: it is for the binder)."""
    spec = _dict(pod.get("spec"))
    if node_of(pod) or is_terminating(pod):
        return "bound or being deleted"
    if spec.get("schedulerName", "") not in _SCHEDULERS:
        return f"it asks for scheduler {spec.get('schedulerName')!r}"
    if _dict(pod.get("status")).get("phase", "Pending") != "Pending":
        return "not Pending"
    if not _dict(spec.get("nodeSelector")):
        return "it has no nodeSelector"
    return None


def _tolerated(taint: Mapping[str, Any], tolerations: Iterable[Mapping[str, Any]]) -> bool:
    for toleration in tolerations:
        if toleration.get("effect") and toleration.get("effect") != taint.get("effect"):
            continue
        if toleration.get("operator", "Equal") == "Exists":
            if not toleration.get("key") or toleration.get("key") == taint.get("key"):
                return True
        elif toleration.get("key") == taint.get("key") and toleration.get("value", "") == taint.get(
            "value", ""
        ):
            return True
    return False


def choose_node(
    pod: Obj, nodes: Mapping[str, Obj], ready: set[str], load: Callable[[str], int]
) -> tuple[str | None, str]:
    """The edge node to bind ``pod`` to, or ``None`` and why none fits (kube-scheduler's wording)."""
    spec = _dict(pod.get("spec"))
    affinity = _dict(_dict(spec.get("affinity")).get("nodeAffinity"))
    if affinity.get("requiredDuringSchedulingIgnoredDuringExecution") is not None:
        return (
            None,
            "edgetwin's binder does not evaluate nodeAffinity: use nodeSelector, or set spec.nodeName",
        )
    selector = {str(k): str(v) for k, v in _dict(spec.get("nodeSelector")).items()}
    tolerations = [t for t in spec.get("tolerations") or [] if isinstance(t, dict)]
    why: Counter[str] = Counter()
    fits: list[tuple[int, str]] = []
    for name, node in sorted(nodes.items()):
        labels = _dict(_dict(node.get("metadata")).get("labels"))
        node_spec = _dict(node.get("spec"))
        capacity = _dict(_dict(node.get("status")).get("allocatable")).get("pods")
        if name not in ready:
            why["node(s) were not ready"] += 1
        elif node_spec.get("unschedulable"):
            why["node(s) were unschedulable"] += 1
        elif any(labels.get(key) != value for key, value in selector.items()):
            why["node(s) didn't match Pod's node affinity/selector"] += 1
        elif any(
            _dict(t).get("effect") in ("NoSchedule", "NoExecute") and not _tolerated(_dict(t), tolerations)
            for t in node_spec.get("taints") or []
        ):
            why["node(s) had untolerated taint"] += 1
        elif str(capacity).isdigit() and load(name) >= int(str(capacity)):
            why["Too many pods"] += 1
        else:
            fits.append((load(name), name))
    if fits:
        return min(fits)[1], ""
    reasons = ", ".join(f"{count} {reason}" for reason, count in sorted(why.items()))
    return None, f"0/{len(nodes)} edge nodes are available" + (f": {reasons}." if reasons else ".")


class Binder:
    def __init__(
        self,
        api: KubeApi,
        edge_nodes: Watch,
        ready_nodes: Callable[[], list[str]],
        load: Callable[[str], int],
        recorder: Recorder,
        metrics: Metrics,
        *,
        delays: tuple[float, ...] = DELAYS,
        watch_timeout: int = 300,
    ) -> None:
        self.api = api
        self.edge_nodes = edge_nodes
        self.ready_nodes = ready_nodes
        self.load = load
        self.recorder = recorder
        self.metrics = metrics
        self.delays = delays
        self.unbound = Watch(
            api,
            PODS.path(),
            self._changed,
            name="pods to bind",
            query={"fieldSelector": "spec.nodeName="},
            timeout=watch_timeout,
        )
        self._wake = asyncio.Event()
        #: uids bound (or found bound) by this replica: the watch may keep showing them unbound.
        self._bound: set[str] = set()
        self._said: dict[str, str] = {}

    def nodes_changed(self) -> None:
        self._wake.set()

    def _changed(self, kind: str, obj: Obj, old: Obj | None) -> None:
        self._wake.set()

    async def run(self) -> None:
        backoff = Backoff(self.delays)
        async with asyncio.TaskGroup() as group:
            group.create_task(self.unbound.run(), name="pods to bind watch")
            while True:
                await self._wake.wait()
                self._wake.clear()
                try:
                    await self._bind_all()
                    backoff.reset()
                except ApiUnavailable as exc:
                    delay = backoff.next()
                    log.warning("binding pods: the API does not answer (%s); again in %.1fs", exc, delay)
                    await asyncio.sleep(delay)
                    self._wake.set()

    async def _bind_all(self) -> None:
        ready = set(self.ready_nodes())
        placed: Counter[str] = Counter()
        for pod in [obj for _, obj in sorted(self.unbound.objects.items())]:
            if uid_of(pod) in self._bound or wants_binding(pod) is not None:
                continue
            node, why = choose_node(pod, self.edge_nodes.objects, ready, lambda n: self.load(n) + placed[n])
            if node is None:
                await self._unschedulable(pod, why)
                continue
            if await self._bind(pod, node):
                placed[node] += 1

    async def _bind(self, pod: Obj, node: str) -> bool:
        key = pod_key(pod)
        namespace, _, name = key.partition("/")
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "namespace": namespace, "uid": uid_of(pod)},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }
        try:
            await self.api.call("POST", PODS.path(namespace, name, "binding"), body=body)
        except (ApiConflict, ApiNotFound) as exc:
            log.debug("pod %s not bound: %s (bound meanwhile, or gone)", key, exc)
            self._bound.add(uid_of(pod))
            return False
        except ApiUnavailable:
            raise
        except ApiError as exc:
            self.metrics.api_errors.labels("pods/binding", str(exc.status)).inc()
            log.error("the API refuses to bind pod %s to %s: %s", key, node, exc)  # noqa: TRY400
            await self._unschedulable(pod, f"binding to node {node} was refused: {exc}")
            return False
        self.metrics.api_writes.labels("pods/binding").inc()
        self._bound.add(uid_of(pod))
        self._said.pop(uid_of(pod), None)
        log.info("pod bound: pod=%s node=%s", key, node)
        self.recorder.record(
            {**pod, "apiVersion": "v1", "kind": "Pod"},
            "Scheduled",
            f"Successfully assigned {key} to {node}",
            type="Normal",
        )
        return True

    async def _unschedulable(self, pod: Obj, why: str) -> None:
        uid = uid_of(pod)
        if self._said.get(uid) == why:
            return
        self._said[uid] = why
        log.info("pod not bound: pod=%s reason=%r", pod_key(pod), why)
        self.recorder.record({**pod, "apiVersion": "v1", "kind": "Pod"}, "FailedScheduling", why)
        namespace, _, name = pod_key(pod).partition("/")
        condition = {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": why,
            "lastTransitionTime": rfc3339(time.time()),
        }
        others = [
            c
            for c in _dict(pod.get("status")).get("conditions") or []
            if isinstance(c, dict) and c.get("type") != "PodScheduled"
        ]
        body = {"metadata": {"uid": uid}, "status": {"conditions": [*others, condition]}}
        try:
            await self.api.call(
                "PATCH", PODS.path(namespace, name, "status"), body=body, content_type=MERGE_PATCH
            )
        except (ApiConflict, ApiNotFound):
            return
        self.metrics.api_writes.labels("pods/status").inc()
