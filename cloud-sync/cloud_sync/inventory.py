"""What each node should hold: every Device and DeviceModel in the cluster, and where each device goes.

The watches of Devices and DeviceModels (all namespaces) feed this; for each Device it keeps a
``Placement``: its node (``spec.nodeName``), and either the ``DeviceAssignment`` the node gets (the
Device without status, its DeviceModel, its generation, its settled desired values with their
versions, and a revision that changes with the Device or its model) or the ``Problem`` that keeps
it back. A device that waits for cloud-sync to stamp its new desired values' versions
(``stamps_due``) is held back until the stamp is in the annotation, so every replica sends the same
versions.

Listeners hear of every placement that changed in a way a node or a user must learn of: its node,
what it would be sent, its problem. A status write (cloud-sync's own, many per second) changes
none of these and is not recomputed: a placement is recomputed only when the Device's uid,
generation or version annotation, or its model, changed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cloud_sync.checks import ModelCheck, Problem, check_device, check_model, revision_of
from cloud_sync.kube import Obj
from cloud_sync.versions import ANNOTATION, cloud_writes, settled
from cloud_sync.watches import object_key
from twin.link import DeviceAssignment
from twin.models import cycle_seconds

__all__ = ["Inventory", "Placement", "PlacementListener"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Placement:
    device_id: str
    node: str
    uid: str
    assignment: DeviceAssignment | None  # what the node gets; None: held back (problem or stamp due)
    problem: Problem | None
    stamps_due: bool
    inputs: tuple[Any, ...]  # what it was computed from

    @property
    def signature(self) -> tuple[Any, ...] | None:
        """Changes exactly when the node must be sent the device again."""
        if self.assignment is None:
            return None
        pairs = sorted((n, d.value, d.cloud, d.edge) for n, d in self.assignment.desired.items())
        return (self.assignment.revision, tuple(pairs))

    def same_for_listeners(self, other: Placement | None) -> bool:
        return (
            other is not None
            and self.node == other.node
            and self.signature == other.signature
            and self.problem == other.problem
            and self.stamps_due == other.stamps_due
        )


#: Called with the device id, its placement before (``None``: new) and after (``None``: deleted).
PlacementListener = Callable[[str, Placement | None, Placement | None], None]


def _model_key(obj: Obj) -> str | None:
    metadata = obj.get("metadata") or {}
    ref = (obj.get("spec") or {}).get("deviceModelRef")
    name = ref.get("name") if isinstance(ref, dict) else None
    return f"{metadata.get('namespace', 'default')}/{name}" if isinstance(name, str) else None


class Inventory:
    def __init__(self) -> None:
        self.devices: dict[str, Obj] = {}  # as watched, status included
        self.models: dict[str, ModelCheck] = {}
        self.placements: dict[str, Placement] = {}
        self._by_node: dict[str, set[str]] = {}
        self._by_model: dict[str, set[str]] = {}
        self._model_of: dict[str, str] = {}
        self.listeners: list[PlacementListener] = []

    # -- queries -------------------------------------------------------------------------------------

    def devices_of(self, node: str) -> list[Placement]:
        """Every device whose ``spec.nodeName`` is ``node``, sendable or not."""
        return [self.placements[i] for i in sorted(self._by_node.get(node, ()))]

    def node_names(self) -> set[str]:
        return {node for node, ids in self._by_node.items() if node and ids}

    def report_cycle(self, device_id: str) -> float | None:
        """The device's report cycle in seconds (``None``: no reportCycle set, or unknown device)."""
        placement = self.placements.get(device_id)
        if placement is None or placement.assignment is None:
            return None
        cycles = [
            p.reportCycle
            for p in placement.assignment.device.spec.properties
            if p.reportToCloud and p.reportCycle > 0
        ]
        return cycle_seconds(min(cycles), what=f"{device_id} reportCycle") if cycles else None

    # -- watch handlers ------------------------------------------------------------------------------

    def on_model(self, kind: str, obj: Obj, old: Obj | None) -> None:
        key = object_key(obj)
        if kind == "DELETED":
            self.models.pop(key, None)
        else:
            checked = check_model(key, obj)
            if checked.problem:
                log.warning("%s", checked.problem)
            self.models[key] = checked
        for device_id in sorted(self._by_model.get(key, ())):
            self._update(device_id, self.devices[device_id])

    def on_device(self, kind: str, obj: Obj, old: Obj | None) -> None:
        device_id = object_key(obj)
        if kind == "DELETED":
            self.devices.pop(device_id, None)
            before = self.placements.pop(device_id, None)
            if before is not None:
                self._unindex(device_id, before)
                self._tell(device_id, before, None)
            return
        self.devices[device_id] = obj
        self._update(device_id, obj)

    # -- placements ------------------------------------------------------------------------------------

    def _update(self, device_id: str, obj: Obj) -> None:
        before = self.placements.get(device_id)
        after = self._place(device_id, obj, before)
        if after is before:
            return
        if before is not None:
            self._unindex(device_id, before)
        self.placements[device_id] = after
        self._by_node.setdefault(after.node, set()).add(device_id)
        model_key = _model_key(obj)
        if model_key is not None:
            self._by_model.setdefault(model_key, set()).add(device_id)
            self._model_of[device_id] = model_key
        if not after.same_for_listeners(before):
            self._tell(device_id, before, after)

    def _unindex(self, device_id: str, placement: Placement) -> None:
        self._by_node.get(placement.node, set()).discard(device_id)
        model_key = self._model_of.pop(device_id, None)
        if model_key is not None:
            self._by_model.get(model_key, set()).discard(device_id)

    def _place(self, device_id: str, obj: Obj, before: Placement | None) -> Placement:
        metadata = obj.get("metadata") or {}
        model_key = _model_key(obj)
        model = self.models.get(model_key) if model_key else None
        inputs = (
            metadata.get("uid"),
            metadata.get("generation"),
            (metadata.get("annotations") or {}).get(ANNOTATION),
            model.revision if model else None,
            model.problem if model else None,
        )
        if before is not None and before.inputs == inputs:
            return before
        device, checked, problem = check_device(obj, self.models)
        spec_node = (obj.get("spec") or {}).get("nodeName")
        node = (
            device.spec.nodeName if device is not None else (spec_node if isinstance(spec_node, str) else "")
        )
        uid = str(metadata.get("uid", ""))
        if problem is not None or device is None or checked is None or checked.model is None:
            return Placement(device_id, node, uid, None, problem, False, inputs)
        if cloud_writes(obj):
            return Placement(device_id, node, uid, None, None, True, inputs)
        generation = metadata.get("generation")
        assignment = DeviceAssignment(
            device=device,
            model=checked.model,
            generation=generation if isinstance(generation, int) else 0,
            desired=settled(obj),
            revision=f"{revision_of(obj)}/{checked.revision}",
        )
        return Placement(device_id, node, uid, assignment, None, False, inputs)

    def _tell(self, device_id: str, before: Placement | None, after: Placement | None) -> None:
        for listener in self.listeners:
            try:
                listener(device_id, before, after)
            except Exception:
                log.exception("a listener of device %s failed", device_id)
