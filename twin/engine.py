"""The DeviceTwin engine: pure rules, no I/O.

Per device and property it keeps the desired (``expected``) and reported (``actual``) values with
their timestamps and ``{cloud, edge}`` version counters, applies updates from the edge (apps and
mappers over MQTT) and from the cloud, and says what changed (for documents) and what is still to
do (the delta). An update is all or nothing: if one property in it is refused, nothing changes.

Version rules (docs/concepts.md, "Versions"): a local write bumps ``edge``; a cloud write carries
its ``(cloud, edge)`` pair. Pairs are ordered cloud first: a cloud write with a newer ``cloud``
counter wins over local writes made meanwhile; one with the same ``cloud`` counter and an older
``edge`` lost a race with a local write and is refused (``VersionConflict``; the edge value goes
up instead); an older or repeated pair is stale and ignored.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from twin.errors import InvalidValue, UnknownProperty, VersionConflict
from twin.models import Device, DeviceModel
from twin.values import PropertySchema, check_key
from twin.wire import PropertyBody, TwinUpdate, ValueBody, VersionBody, WireProperty

__all__ = [
    "Change",
    "DeviceSchema",
    "DeviceTwin",
    "TwinProperty",
    "TwinValue",
    "UpdateOutcome",
    "Version",
    "declared_desired",
]

DELETED = "deleted"


@dataclass(slots=True)
class TwinValue:
    value: str
    timestamp: int

    def to_wire(self) -> ValueBody:
        return {"value": self.value, "metadata": {"timestamp": self.timestamp}}


@dataclass(slots=True)
class Version:
    cloud: int = 0
    edge: int = 0

    def to_wire(self) -> VersionBody:
        return {"cloud": self.cloud, "edge": self.edge}


@dataclass(slots=True)
class TwinProperty:
    """One property's whole twin state, as KubeEdge's MsgTwin."""

    expected: TwinValue | None = None
    actual: TwinValue | None = None
    optional: bool = False
    type: str = "string"
    deleted: bool = False
    expected_version: Version = field(default_factory=Version)
    actual_version: Version = field(default_factory=Version)
    # The desired value the Device manifest last carried: a changed manifest is a new cloud write.
    manifest_desired: str = ""

    def to_wire(self) -> PropertyBody:
        # ``expected`` and ``actual`` are always present: published KubeEdge mappers read
        # ``current.expected.value`` without checking that it is there.
        return {
            "expected": (self.expected or TwinValue("", 0)).to_wire(),
            "actual": (self.actual or TwinValue("", 0)).to_wire(),
            "optional": self.optional,
            "metadata": {"type": DELETED if self.deleted else self.type},
            "expected_version": self.expected_version.to_wire(),
            "actual_version": self.actual_version.to_wire(),
        }

    def to_record(self) -> dict[str, Any]:
        """The stored form: compact, because the store writes a thousand of these at a time."""
        expected, actual = self.expected, self.actual
        ev, av = self.expected_version, self.actual_version
        return {
            "expected": [expected.value, expected.timestamp] if expected else None,
            "actual": [actual.value, actual.timestamp] if actual else None,
            "optional": self.optional,
            "type": self.type,
            "deleted": self.deleted,
            "versions": [ev.cloud, ev.edge, av.cloud, av.edge],
            "manifest_desired": self.manifest_desired,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> TwinProperty:
        # Written out by hand, no helper calls: a node with a thousand devices loads thousands of
        # these at every start, before it answers its first request.
        expected, actual = record.get("expected"), record.get("actual")
        ec, ee, ac, ae = record.get("versions") or (0, 0, 0, 0)
        return cls(
            expected=TwinValue(str(expected[0]), int(expected[1])) if expected else None,
            actual=TwinValue(str(actual[0]), int(actual[1])) if actual else None,
            optional=bool(record.get("optional", False)),
            # Interned: a few type names shared by thousands of properties, not a string each.
            type=sys.intern(str(record.get("type", "string"))),
            deleted=bool(record.get("deleted", False)),
            expected_version=Version(int(ec), int(ee)),
            actual_version=Version(int(ac), int(ae)),
            manifest_desired=str(record.get("manifest_desired", "")),
        )

    def clone(self) -> TwinProperty:
        # By hand: copy.deepcopy cost ~40 % of the twin's event loop under load.
        return TwinProperty(
            expected=TwinValue(self.expected.value, self.expected.timestamp) if self.expected else None,
            actual=TwinValue(self.actual.value, self.actual.timestamp) if self.actual else None,
            optional=self.optional,
            type=self.type,
            deleted=self.deleted,
            expected_version=Version(self.expected_version.cloud, self.expected_version.edge),
            actual_version=Version(self.actual_version.cloud, self.actual_version.edge),
            manifest_desired=self.manifest_desired,
        )


@dataclass(frozen=True, slots=True)
class DeviceSchema:
    """The property rules of one device, from its Device and DeviceModel."""

    device_id: str
    properties: Mapping[str, PropertySchema]

    @classmethod
    def build(
        cls,
        device: Device,
        model: DeviceModel,
        shared: dict[tuple[int, str], PropertySchema] | None = None,
        *,
        device_id: str | None = None,
    ) -> DeviceSchema:
        """``shared``: property schemas already built for ``model`` (the devices of one model share
        them; a caller building many schemas at once passes the same dict to each call).
        ``device_id``: the caller's string for ``device.id``, kept instead of a copy of its own."""
        schemas: dict[str, PropertySchema] = {}
        for prop in device.spec.properties:
            key = (id(model), prop.name)
            schema = shared.get(key) if shared is not None else None
            if schema is None:
                model_prop = model.property(prop.name)
                if model_prop is None:
                    raise UnknownProperty(
                        f"Device {device.id}: DeviceModel {model.key} has no property {prop.name!r}"
                    )
                schema = PropertySchema.from_model(model_prop, model=model)
                if shared is not None:
                    shared[key] = schema
            schemas[prop.name] = schema
        return cls(device_id or device.id, schemas)

    def get(self, name: str) -> PropertySchema:
        schema = self.properties.get(name)
        if schema is None:
            raise UnknownProperty(f"device {self.device_id} has no property {name!r}")
        return schema


def declared_desired(device: Device) -> dict[str, str]:
    """The Device's properties, in order, each with the desired value it declares ("" for none)."""
    return {p.name: p.desired.value if p.desired is not None else "" for p in device.spec.properties}


@dataclass(frozen=True, slots=True)
class Change:
    """One property an update changed: its whole state before (``None`` if new) and after."""

    name: str
    last: TwinProperty | None
    current: TwinProperty


@dataclass(frozen=True)
class UpdateOutcome:
    changes: list[Change]

    @property
    def changed(self) -> bool:
        return bool(self.changes)


@dataclass(slots=True)
class DeviceTwin:
    """All twin properties of one device, plus its connection state.

    A ``TwinProperty`` held here is never changed in place: every change stores a new one. So a
    ``Change`` can point at the states before and after without copying them.
    """

    device_id: str
    properties: dict[str, TwinProperty] = field(default_factory=dict)
    state: str = "unknown"
    last_online: str = ""

    # -- definitions --------------------------------------------------------------------------

    def sync_definition(
        self, device: Device, schema: DeviceSchema, now: int, *, manifest_desired: bool = True
    ) -> UpdateOutcome:
        """Make the twin follow its Device: new properties, dropped ones, and new desired values.

        With ``manifest_desired`` a desired value that changed in the manifest is a new cloud write;
        without it (devices assigned by cloud-sync) desired values come with their versions through
        ``apply_cloud_desired`` instead.
        """
        return self.sync_properties(declared_desired(device), schema, now, manifest_desired=manifest_desired)

    def sync_properties(
        self, wanted: Mapping[str, str], schema: DeviceSchema, now: int, *, manifest_desired: bool = True
    ) -> UpdateOutcome:
        """``sync_definition`` from what it reads of the Device: ``declared_desired(device)``."""
        for name, value in wanted.items():
            if manifest_desired and value:
                schema.properties[name].check_desired(value)
        changes: list[Change] = []
        for name, value in wanted.items():
            type_name = schema.properties[name].type.wire_name
            last = self.properties.get(name)
            desired = value if manifest_desired else ""
            if (
                last is not None
                and last.type == type_name
                and (not desired or desired == last.manifest_desired)
            ):
                continue  # unchanged (the common case at every start): no copy
            current = last.clone() if last is not None else TwinProperty(type=type_name)
            modified = last is None or current.type != type_name
            current.type = type_name
            if desired and desired != current.manifest_desired:
                current.expected = TwinValue(desired, now)
                current.expected_version.cloud += 1
                current.manifest_desired = desired
                modified = True
            if modified:
                self.properties[name] = current
                changes.append(Change(name, last, current))
        for name in [n for n in self.properties if n not in wanted]:
            last = self.properties.pop(name)
            gone = last.clone()
            gone.deleted = True
            changes.append(Change(name, last, gone))
        return UpdateOutcome(changes)

    # -- edge updates ---------------------------------------------------------------------------

    def apply_edge_update(self, request: TwinUpdate, schema: DeviceSchema, now: int) -> UpdateOutcome:
        """Apply an update from an app or mapper; ``PermanentError`` subclasses on a refusal.

        As KubeEdge's twin: every value sent counts as a change (its edge version is bumped even if
        the value is the same); a property with neither ``expected`` nor ``actual``, and ``null``
        for a property (a delete, which a property the Device declares ignores), change nothing.
        """
        planned = [(name, self._check(name, wire, schema)) for name, wire in request.twin.items()]
        return UpdateOutcome(self._apply(planned, schema, now))

    def apply_cloud_update(self, request: TwinUpdate, schema: DeviceSchema, now: int) -> UpdateOutcome:
        """A ``twin/cloud_updated`` body: a desired value carrying ``expected_version`` is a cloud write.

        Versioned desired values follow the cloud rules of ``apply_cloud_desired``; everything else
        in the body (published example apps send unversioned reported values here) is applied as
        an edge update. All or nothing, like an edge update.
        """
        cloud: dict[str, tuple[str, Version]] = {}
        edge: list[tuple[str, WireProperty | None]] = []
        for name, wire in request.twin.items():
            versions = wire.expected_version if wire is not None else None
            if wire is None or wire.expected is None or versions is None:
                edge.append((name, self._check(name, wire, schema)))
                continue
            plain = WireProperty(actual=wire.actual) if wire.actual is not None else None
            edge.append((name, self._check(name, plain, schema)))
            value = wire.expected.value
            if value is None:
                raise InvalidValue(f"property {name!r}: 'expected' has no 'value'")
            version = Version(versions.cloud, versions.edge)
            self._check_cloud(name, value, version, schema)
            cloud[name] = (value, version)
        changes = self._apply(edge, schema, now)
        for name, (value, version) in cloud.items():
            changes += self.apply_cloud_desired(name, value, version, schema, now).changes
        return UpdateOutcome(changes)

    def _apply(
        self, planned: Iterable[tuple[str, WireProperty | None]], schema: DeviceSchema, now: int
    ) -> list[Change]:
        changes = []
        for name, wire in planned:
            if wire is None:
                continue
            last = self.properties.get(name)
            current = last.clone() if last is not None else TwinProperty(type=schema.get(name).type.wire_name)
            if wire.expected is not None:
                current.expected = TwinValue(wire.expected.value or "", now)
                current.expected_version.edge += 1
            if wire.actual is not None:
                current.actual = TwinValue(wire.actual.value or "", now)
                current.actual_version.edge += 1
            self.properties[name] = current
            changes.append(Change(name, last, current))
        return changes

    def _check(self, name: str, wire: WireProperty | None, schema: DeviceSchema) -> WireProperty | None:
        """Refuse what the update may not do; ``None`` when the property is to be left as it is."""
        check_key(name)
        prop_schema = schema.get(name)
        if wire is None or (wire.expected is None and wire.actual is None):
            return None
        if wire.expected is not None:
            if wire.expected.value is None:
                raise InvalidValue(f"property {name!r}: 'expected' has no 'value'")
            prop_schema.check_desired(wire.expected.value)
        if wire.actual is not None:
            if wire.actual.value is None:
                raise InvalidValue(f"property {name!r}: 'actual' has no 'value'")
            prop_schema.check_reported(wire.actual.value)
        return wire

    # -- cloud updates --------------------------------------------------------------------------

    def apply_cloud_desired(
        self, name: str, value: str, version: Version, schema: DeviceSchema, now: int
    ) -> UpdateOutcome:
        """A desired value from the cloud with the versions ``(cloud, edge)`` it was written at.

        Versions order writes as pairs, cloud first: a write is applied when its pair is newer than
        the stored one. A cloud write with a newer ``cloud`` counter wins over local writes made
        meanwhile (the Kubernetes API is the source of truth); one with the same ``cloud`` counter
        but an older ``edge`` counter lost a race with a local write (``VersionConflict``; the local
        value goes up instead); anything else is a stale or repeated write and changes nothing.
        """
        if not self._check_cloud(name, value, version, schema):
            return UpdateOutcome([])
        last = self.properties.get(name)
        current = last.clone() if last is not None else TwinProperty(type=schema.get(name).type.wire_name)
        current.expected = TwinValue(value, now)
        # The edge counter never goes back: local writes after this one must still count up from it.
        current.expected_version = Version(version.cloud, max(version.edge, current.expected_version.edge))
        self.properties[name] = current
        return UpdateOutcome([Change(name, last, current)])

    def _check_cloud(self, name: str, value: str, version: Version, schema: DeviceSchema) -> bool:
        """Whether a cloud write is newer than what is stored; ``VersionConflict`` if it lost a race."""
        check_key(name)
        schema.get(name).check_desired(value)
        last = self.properties.get(name)
        stored = last.expected_version if last is not None else Version()
        if version.cloud != stored.cloud:
            return version.cloud > stored.cloud
        if version.edge < stored.edge:
            raise VersionConflict(
                f"property {name!r}: the cloud write (versions {version.cloud}/{version.edge}) lost to a "
                f"local write (edge version {stored.edge})"
            )
        return version.edge > stored.edge

    # -- views ------------------------------------------------------------------------------------

    def delta(self, schema: DeviceSchema) -> dict[str, str]:
        """Desired values the device has not reached yet: non-empty expected ≠ actual."""
        pending: dict[str, str] = {}
        for name, prop in self.properties.items():
            if prop.deleted or prop.expected is None or not prop.expected.value:
                continue
            actual = prop.actual.value if prop.actual is not None else None
            prop_schema = schema.properties.get(name)
            if actual is None or not (
                prop_schema.same(prop.expected.value, actual)
                if prop_schema
                else prop.expected.value == actual
            ):
                pending[name] = prop.expected.value
        return pending

    def desired_properties(self) -> dict[str, PropertyBody]:
        """Every property with a desired value, as a delta carries them (KubeEdge lists them all)."""
        return {
            name: prop.to_wire()
            for name, prop in self.properties.items()
            if not prop.deleted and prop.expected is not None and prop.expected.value
        }

    def wire(self, names: Iterable[str] | None = None) -> dict[str, PropertyBody]:
        selected = self.properties if names is None else {n: self.properties[n] for n in names}
        return {name: prop.to_wire() for name, prop in selected.items() if not prop.deleted}

    def to_record(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "state": self.state,
            "last_online": self.last_online,
            "properties": {name: prop.to_record() for name, prop in self.properties.items()},
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> DeviceTwin:
        return cls(
            device_id=str(record["device_id"]),
            state=sys.intern(str(record.get("state", "unknown"))),
            last_online=str(record.get("last_online", "")),
            properties={
                name: TwinProperty.from_record(prop) for name, prop in record.get("properties", {}).items()
            },
        )
