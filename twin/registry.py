"""The devices of one node: their Devices, DeviceModels, schemas and twins, kept in the store.

The twin service answers MQTT requests about these; this module decides what the node holds when
its definitions change (from manifests, or assigned by the cloud), and what that does to the twins:
new properties, dropped ones, new desired values, devices kept aside when they leave and restored
when they come back. It publishes nothing: it says what changed and the service tells the world.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, NamedTuple

from twin.device_table import DeviceTable
from twin.engine import Change, DeviceSchema, DeviceTwin, UpdateOutcome, Version, declared_desired
from twin.errors import PermanentError, UnknownDevice, VersionConflict
from twin.manifests import Manifests, check_consistency
from twin.models import Device, DeviceModel
from twin.store import TwinStore
from twin.values import PropertySchema
from twin.wire import MemberBody, now_ms

__all__ = ["Assigned", "Assignment", "CompactAssignment", "NodeDevices", "Redefined", "assigned_id"]

log = logging.getLogger(__name__)


class Assignment(NamedTuple):
    """A device the cloud assigns to the node: Device, DeviceModel, desired values with versions."""

    device: Device
    model: DeviceModel
    desired: Mapping[str, tuple[str, Version]]


class CompactAssignment(NamedTuple):
    """An ``Assignment`` with its Device as JSON (``twin.device_table.encode_device``): a sync of a
    thousand devices is applied without a thousand Devices alive at once."""

    device_id: str
    device_json: bytes
    model: DeviceModel
    desired: Mapping[str, tuple[str, Version]]


def assigned_id(assignment: Assignment | CompactAssignment) -> str:
    """The ``namespace/name`` of an assigned device."""
    if isinstance(assignment, CompactAssignment):
        return assignment.device_id
    return assignment.device.id


@dataclass
class Redefined:
    """What a change of definitions did: devices added or changed (their ids: the node holds
    their Devices), devices gone, twins changed."""

    added: list[str] = field(default_factory=list)
    removed: list[Device] = field(default_factory=list)
    outcomes: dict[str, UpdateOutcome] = field(default_factory=dict)


@dataclass
class Assigned(Redefined):
    """Also: per device, the cloud's desired values applied, and those that lost to a local write."""

    desired: dict[str, list[Change]] = field(default_factory=dict)
    lost: dict[str, set[str]] = field(default_factory=dict)


class NodeDevices:
    def __init__(self, node: str, store: TwinStore) -> None:
        self.node = node
        self.store = store
        self.models: dict[str, DeviceModel] = {}
        #: Held as JSON (``twin.device_table``): a thousand Devices as models would be ~11 MB.
        self.devices = DeviceTable()
        self.schemas: dict[str, DeviceSchema] = {}
        self.twins: dict[str, DeviceTwin] = {}

    def load(self) -> tuple[dict[str, DeviceModel], DeviceTable]:
        """Take the twins the store holds; return the definitions it holds."""
        stored = self.store.load()
        self.twins = stored.twins
        # Held as they are stored, so that defining the same again writes nothing.
        self.models, self.devices = dict(stored.models), stored.devices
        return stored.models, stored.devices

    def twin_of(self, device_id: str) -> tuple[DeviceTwin, DeviceSchema]:
        twin = self.twins.get(device_id)
        schema = self.schemas.get(device_id)
        if twin is None or schema is None:
            raise UnknownDevice(f"device {device_id} is not known on node {self.node}")
        return twin, schema

    def held(self) -> dict[str, tuple[int, dict[str, Version]]]:
        """Per device its ``metadata.generation`` and the versions of its desired values."""
        return {
            device_id: (
                generation,
                {
                    name: prop.expected_version
                    for name, prop in self.twins[device_id].properties.items()
                    if prop.expected is not None and not prop.deleted
                },
            )
            for device_id, generation in _generations(self.devices)
            if device_id in self.twins
        }

    def member(self, device_id: str) -> MemberBody:
        """The device as membership answers list it (``twin.wire``)."""
        twin = self.twins.get(device_id)
        # The Device's JSON as held: equal to ``model_dump(mode="json")`` without building the model.
        device = self.devices.document(device_id)
        metadata = device["metadata"]
        member: MemberBody = {
            "id": device_id,
            "name": metadata["name"],
            "state": twin.state if twin else "unknown",
            # What a mapper needs to run the device; KubeEdge clients ignore unknown keys.
            "edgetwin": {"device": device, "model": self.models[_model_key(device)].model_dump(mode="json")},
        }
        # KubeEdge's cloud fills the description from the Device's label; empty fields are left out.
        description = metadata["labels"].get("description", "")
        if description:
            member["description"] = description
        if twin is not None and twin.last_online:
            member["last_online"] = twin.last_online
        return member

    async def define(
        self,
        models: dict[str, DeviceModel],
        devices: Mapping[str, Device],
        *,
        manifest_desired: bool = True,
        save_twins: bool = True,
    ) -> Redefined:
        """Hold exactly these definitions (those of other nodes are left out, with a log line).

        Without ``save_twins`` the caller stores the twins that changed (``Redefined.outcomes``).
        """
        # Devices are read one at a time (from a table, each is built from its JSON and let go):
        # a thousand Devices alive at once are ~11 MB of short-lived objects, and the schemas and
        # twins made meanwhile would pin the allocator's arenas they share with them.
        source = devices if isinstance(devices, DeviceTable) else None
        held, others = DeviceTable(), []
        shared: dict[tuple[int, str], PropertySchema] = {}
        schemas = {}
        #: What the twins follow of each Device (``DeviceTwin.sync_properties``), read in this pass.
        wanted: dict[str, dict[str, str]] = {}
        for device_id in devices:
            device = devices[device_id]
            check_consistency(Manifests(models, {device_id: device}))
            if device.spec.nodeName not in ("", self.node):
                others.append((device_id, device.spec.nodeName))
                continue
            if source is not None:
                held.adopt(device_id, source)  # its JSON as the source holds it: not made again
            else:
                held.put(device_id, device)
            schemas[device_id] = DeviceSchema.build(
                device, models[device.model_key], shared, device_id=device_id
            )
            wanted[device_id] = declared_desired(device)
        mine = held  # this node's devices, in the order given
        for device_id, node in sorted(others):
            log.info("device %s belongs to node %s, not %s", device_id, node, self.node)
        result = Redefined(removed=[self.devices[i] for i in self.devices if i not in mine])
        result.added = [i for i in mine if not self.devices.holds(i, mine, partial(devices.__getitem__, i))]
        for device_id in sorted(set(self.twins) - set(mine)):
            kept = await self.store.archive_twin(self.twins.pop(device_id))
            log.warning(
                "device %s is no longer one of node %s's devices: stopped serving it; its twin is kept "
                "in %s and comes back with the device",
                device_id,
                self.node,
                kept,
            )
        now = now_ms()
        for device_id in mine:
            if device_id not in self.twins:
                restored = await self.store.restore_twin(device_id)
                if restored is not None:
                    log.info("device %s is back on node %s: its kept twin is restored", device_id, self.node)
                self.twins[device_id] = restored or DeviceTwin(device_id)
            result.outcomes[device_id] = self.twins[device_id].sync_properties(
                wanted[device_id], schemas[device_id], now, manifest_desired=manifest_desired
            )
        changed = bool(result.added or result.removed) or models != self.models
        self.models, self.devices, self.schemas = models, held, schemas
        if changed:
            await self.store.save_definitions(models, held)
        if save_twins:
            for device_id, outcome in result.outcomes.items():
                if outcome.changed:
                    await self.store.save_twin(self.twins[device_id], durable=True)
        return result

    async def assign(
        self,
        assigned: Sequence[Assignment | CompactAssignment],
        removed: Iterable[str] = (),
        *,
        complete: bool = False,
    ) -> Assigned:
        """Devices the cloud assigns (new or changed) and takes away; ``complete``: these are all.

        Desired values follow the cloud rules (``DeviceTwin.apply_cloud_desired``); one that lost a
        race with a local write stays as the node holds it and is listed in ``lost``.
        """
        models = dict(self.models)
        # The Devices kept stay JSON until ``define`` reads them: their JSON is not made again.
        devices = DeviceTable() if complete else self.devices.copy()
        for device_id in removed:
            devices.pop(device_id)
        for assignment in assigned:
            models[assignment.model.key] = assignment.model
            if isinstance(assignment, CompactAssignment):
                devices.put_json(assignment.device_id, assignment.device_json)
            else:
                devices.put(assignment.device.id, assignment.device, hold=True)
        used = {_model_key(devices.document(i)) for i in devices}
        # Each twin is stored once, after its desired values too (a durable write costs two fsyncs:
        # a thousand devices assigned at once would otherwise wait for four thousand).
        redefined = await self.define(
            {k: m for k, m in models.items() if k in used}, devices, manifest_desired=False, save_twins=False
        )
        result = Assigned(redefined.added, redefined.removed, redefined.outcomes)
        changed = {i for i, outcome in redefined.outcomes.items() if outcome.changed}
        now = now_ms()
        for assignment in assigned:
            device_id = assigned_id(assignment)
            if device_id not in self.twins:
                continue  # assigned to another node after all
            twin, schema = self.twin_of(device_id)
            for name, (value, version) in assignment.desired.items():
                try:
                    result.desired.setdefault(device_id, []).extend(
                        twin.apply_cloud_desired(name, value, version, schema, now).changes
                    )
                except VersionConflict as exc:
                    log.info("%s: %s", device_id, exc)
                    result.lost.setdefault(device_id, set()).add(name)
                except PermanentError as exc:
                    log.error("%s: the cloud sent a desired value the twin refuses: %s", device_id, exc)  # noqa: TRY400
            if result.desired.get(device_id):
                changed.add(device_id)
        for device_id in sorted(changed):
            if device_id in self.twins:
                await self.store.save_twin(self.twins[device_id], durable=True)
        return result


def _generations(devices: DeviceTable) -> Iterator[tuple[str, int]]:
    """Each device's ``metadata.generation`` (0 if it has none), read from its JSON."""
    for device_id in devices:
        generation = devices.document(device_id)["metadata"].get("generation", 0)
        yield device_id, generation if isinstance(generation, int) else 0


def _model_key(document: dict[str, Any]) -> str:
    """``Device.model_key`` of a Device's JSON document."""
    return f"{document['metadata']['namespace']}/{document['spec']['deviceModelRef']['name']}"
