"""The dashboard's picture of the cluster, kept by cloud-sync's own watches, and what changed in it.

cloud-sync already watches Devices, DeviceModels, edge Nodes and their Leases; the board listens
to those watches (``Watch.listeners``, the inventory's placement listeners) and to two of its own,
Events about Devices and about Nodes. It copies nothing: a view (``views``) is built from the
watched objects when the page needs it, so the board costs a few sets of names between two pushes.
Each change marks what it touches (a status write its device; a Device moved to another node both
nodes' device counts; a DeviceModel every device of that model; a Lease its node), and
``take_changes`` hands the views of everything marked since the last call (``None`` for what is
gone), once per push.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from cloud_sync.dashboard.views import View, device_view, event_view, model_key, node_view
from cloud_sync.inventory import Inventory, Placement
from cloud_sync.kube import KubeApi, Obj
from cloud_sync.metrics import Metrics
from cloud_sync.nodes import NodeRegistry
from cloud_sync.resources import LEASE_NAMESPACE
from cloud_sync.watches import Watch, object_key

__all__ = ["Board", "Sources"]


class Sources(Protocol):
    """The parts of cloud-sync the dashboard reads (``CloudSync`` has them all)."""

    api: KubeApi
    metrics: Metrics
    inventory: Inventory
    devices_watch: Watch
    models_watch: Watch
    registry: NodeRegistry


class Board:
    def __init__(self, sources: Sources, *, events: int = 100) -> None:
        self.sources = sources
        self.events_limit = events
        #: Events about Devices and Nodes, by ``namespace/name`` (fed by the dashboard's watches).
        self.events: dict[str, Obj] = {}
        self.changed = asyncio.Event()
        self._devices: set[str] = set()
        self._nodes: set[str] = set()
        self._events: set[str] = set()
        sources.devices_watch.listeners.append(self.on_device)
        sources.models_watch.listeners.append(self.on_model)
        sources.registry.nodes.listeners.append(self.on_node)
        sources.registry.leases.listeners.append(self.on_lease)
        sources.inventory.listeners.append(self.on_placement)

    # -- what changed (watch listeners, all in the loop) ----------------------------------------------

    def _mark(self, marks: set[str], key: str) -> None:
        marks.add(key)
        self.changed.set()

    def on_device(self, kind: str, obj: Obj, old: Obj | None) -> None:
        self._mark(self._devices, object_key(obj))
        for version in (obj, old):
            node = ((version or {}).get("spec") or {}).get("nodeName")
            if isinstance(node, str) and node:
                self._mark(self._nodes, node)

    def on_model(self, kind: str, obj: Obj, old: Obj | None) -> None:
        key = object_key(obj)
        for device_id, device in self.sources.devices_watch.objects.items():
            if model_key(device) == key:
                self._mark(self._devices, device_id)

    def on_placement(self, device_id: str, before: Placement | None, after: Placement | None) -> None:
        self._mark(self._devices, device_id)

    def on_node(self, kind: str, obj: Obj, old: Obj | None) -> None:
        self._mark(self._nodes, object_key(obj))

    def on_lease(self, kind: str, obj: Obj, old: Obj | None) -> None:
        self._mark(self._nodes, str((obj.get("metadata") or {}).get("name")))

    def on_event(self, kind: str, obj: Obj, old: Obj | None) -> None:
        key = object_key(obj)
        if kind == "DELETED":
            self.events.pop(key, None)
        else:
            self.events[key] = obj
        self._mark(self._events, key)

    # -- views -------------------------------------------------------------------------------------------

    def device(self, device_id: str) -> View | None:
        obj = self.sources.devices_watch.objects.get(device_id)
        if obj is None:
            return None
        inventory = self.sources.inventory
        key = model_key(obj)
        checked = inventory.models.get(key) if key is not None else None
        placement = inventory.placements.get(device_id)
        return device_view(
            obj, checked.model if checked is not None else None, placement.problem if placement else None
        )

    def _node_names(self) -> set[str]:
        return set(self.sources.registry.nodes.objects) | self.sources.inventory.node_names()

    def node(self, name: str) -> View | None:
        registry = self.sources.registry
        obj = registry.nodes.objects.get(name)
        devices = len(self.sources.inventory.devices_of(name))
        if obj is None and not devices:
            return None
        return node_view(name, obj, registry.leases.objects.get(f"{LEASE_NAMESPACE}/{name}"), devices)

    def event(self, key: str) -> View | None:
        obj = self.events.get(key)
        if obj is None:
            return None
        involved = obj.get("involvedObject") or {}
        # A real cluster's Node events are mostly about its other nodes: only edge nodes are shown.
        if involved.get("kind") == "Node" and involved.get("name") not in self.sources.registry.nodes.objects:
            return None
        return event_view(obj)

    def snapshot(self) -> dict[str, Any]:
        """Everything the page shows: devices and nodes by name, the newest events first."""
        devices = [self.device(key) for key in sorted(self.sources.devices_watch.objects)]
        nodes = [self.node(name) for name in sorted(self._node_names())]
        events = [view for view in map(self.event, self.events) if view is not None]
        events.sort(key=lambda view: view["time"] or 0, reverse=True)
        return {
            "devices": [view for view in devices if view is not None],
            "nodes": [view for view in nodes if view is not None],
            "events": events[: self.events_limit],
        }

    def take_changes(self, *, build: bool = True) -> dict[str, dict[str, View | None]]:
        """The views of what changed since the last call (``None``: gone); empty if nothing did.

        ``build=False`` forgets the marks without building views (nobody is watching).
        """
        marked = (self._devices, self._nodes, self._events)
        self._devices, self._nodes, self._events = set(), set(), set()
        if not build or not any(marked):
            return {}
        devices, nodes, events = marked
        return {
            "devices": {key: self.device(key) for key in sorted(devices)},
            "nodes": {name: self.node(name) for name in sorted(nodes)},
            "events": {key: self.event(key) for key in sorted(events)},
        }
