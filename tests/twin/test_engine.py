"""The twin engine's rules: updates, versions, deltas, documents, definitions (pure, no I/O)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fixtures.twin import SAMPLE_DEVICES
from twin.engine import DeviceSchema, DeviceTwin, TwinProperty, Version
from twin.errors import (
    InvalidValue,
    OutOfRange,
    PermanentError,
    ReadOnlyProperty,
    TypeMismatch,
    UnknownProperty,
    VersionConflict,
)
from twin.manifests import load_manifests
from twin.models import Device, DeviceModel
from twin.wire import TwinUpdate

MANIFESTS = load_manifests([SAMPLE_DEVICES])
DEVICE: Device = MANIFESTS.devices["default/thermostat"]
MODEL: DeviceModel = MANIFESTS.models["default/thermostat-model"]
SCHEMA = DeviceSchema.build(DEVICE, MODEL)


def fresh() -> DeviceTwin:
    twin = DeviceTwin(DEVICE.id)
    twin.sync_definition(DEVICE, SCHEMA, now=1000)
    return twin


def update(**props: dict[str, Any] | None) -> TwinUpdate:
    return TwinUpdate.model_validate({"event_id": "e", "twin": props})


def test_a_new_twin_takes_properties_types_and_desired_values_from_the_manifest() -> None:
    twin = fresh()
    assert set(twin.properties) == {"temperature", "target", "power", "mode"}
    target = twin.properties["target"]
    assert target.type == "int"
    assert target.expected is not None
    assert (target.expected.value, target.expected.timestamp) == ("20", 1000)
    assert target.expected_version == Version(cloud=1, edge=0)
    assert twin.properties["temperature"].type == "float"
    assert twin.properties["power"].optional is False


def test_local_desired_write_bumps_the_edge_version_and_stamps_the_value() -> None:
    twin = fresh()
    outcome = twin.apply_edge_update(update(target={"expected": {"value": "25"}}), SCHEMA, now=2000)
    prop = twin.properties["target"]
    assert prop.expected is not None
    assert (prop.expected.value, prop.expected.timestamp) == ("25", 2000)
    assert prop.expected_version == Version(cloud=1, edge=1)
    assert [c.name for c in outcome.changes] == ["target"]
    change = outcome.changes[0]
    assert change.last is not None
    assert change.last.expected is not None
    assert change.last.expected.value == "20"
    assert change.current.expected is not None
    assert change.current.expected.value == "25"


def test_reported_write_bumps_the_actual_edge_version_only() -> None:
    twin = fresh()
    twin.apply_edge_update(update(temperature={"actual": {"value": "21.5"}}), SCHEMA, now=2000)
    prop = twin.properties["temperature"]
    assert prop.actual is not None
    assert prop.actual.value == "21.5"
    assert prop.actual_version == Version(0, 1)
    assert prop.expected_version == Version(0, 0)


@pytest.mark.parametrize(
    ("props", "error"),
    [
        ({"target": {"expected": {"value": "31"}}}, OutOfRange),
        ({"temperature": {"expected": {"value": "1"}}}, ReadOnlyProperty),
        ({"colour": {"expected": {"value": "1"}}}, UnknownProperty),
        ({"mode": {"expected": {"value": "ok"}}, "target": {"expected": {"value": "x"}}}, InvalidValue),
        ({"target": {"expected": {}}}, InvalidValue),
        ({"temperature": {"actual": {"value": None}}}, InvalidValue),
        ({"temperature": {"actual": {"value": ""}}}, TypeMismatch),
        ({"target": {"actual": {"value": "9223372036854775808"}}}, TypeMismatch),
        ({"power": {"actual": {"value": "maybe"}}}, TypeMismatch),
        ({"target": {"expected": {"value": ""}}}, TypeMismatch),
    ],
)
def test_a_refused_update_changes_nothing(props: dict[str, Any], error: type[PermanentError]) -> None:
    twin = fresh()
    before = twin.to_record()
    with pytest.raises(error):
        twin.apply_edge_update(update(**props), SCHEMA, now=2000)
    assert twin.to_record() == before


@pytest.mark.parametrize(
    "props",
    [{}, {"mode": None}, {"mode": {"metadata": {"type": "Updated"}}}, {"mode": {}}],
    ids=["empty twin", "delete of a declared property", "metadata only", "empty property"],
)
def test_an_update_that_asks_for_nothing_succeeds_and_changes_nothing(props: dict[str, Any]) -> None:
    # As KubeEdge: a declared (non-optional) property is not deleted by null, and a property with
    # neither expected nor actual is left as it is.
    twin = fresh()
    before = twin.to_record()
    assert not twin.apply_edge_update(update(**props), SCHEMA, now=2000).changed
    assert twin.to_record() == before


def test_every_value_sent_counts_as_a_change_even_when_unchanged() -> None:
    twin = fresh()
    twin.apply_edge_update(update(temperature={"actual": {"value": "21"}}), SCHEMA, now=2)
    outcome = twin.apply_edge_update(update(temperature={"actual": {"value": "21"}}), SCHEMA, now=3)
    assert [c.name for c in outcome.changes] == ["temperature"]
    assert twin.properties["temperature"].actual_version == Version(0, 2)


def test_delta_lists_non_empty_desired_values_the_device_has_not_reached() -> None:
    twin = fresh()
    assert twin.delta(SCHEMA) == {"target": "20"}
    twin.apply_edge_update(update(target={"actual": {"value": "20"}}), SCHEMA, now=2)
    assert twin.delta(SCHEMA) == {}
    twin.apply_edge_update(update(power={"expected": {"value": "true"}}), SCHEMA, now=3)
    assert twin.delta(SCHEMA) == {"power": "true"}
    twin.apply_edge_update(update(power={"actual": {"value": "1"}}), SCHEMA, now=4)
    assert twin.delta(SCHEMA) == {}


def test_an_empty_desired_value_of_a_string_is_no_desire() -> None:
    twin = fresh()
    twin.apply_edge_update(update(mode={"expected": {"value": "eco"}}), SCHEMA, now=2)
    assert twin.delta(SCHEMA) == {"target": "20", "mode": "eco"}
    twin.apply_edge_update(update(mode={"expected": {"value": ""}}), SCHEMA, now=3)
    assert twin.delta(SCHEMA) == {"target": "20"}


def test_a_cloud_updated_body_applies_versioned_desired_values_as_cloud_writes() -> None:
    twin = fresh()  # target: expected_version cloud=1, edge=0
    body = update(
        target={"expected": {"value": "25"}, "expected_version": {"cloud": 2, "edge": 0}},
        temperature={"actual": {"value": "19.5"}, "metadata": {"type": "Updated"}},
    )
    outcome = twin.apply_cloud_update(body, SCHEMA, now=5)
    assert {c.name for c in outcome.changes} == {"target", "temperature"}
    assert twin.properties["target"].expected_version == Version(2, 0)
    stale = update(target={"expected": {"value": "26"}, "expected_version": {"cloud": 2, "edge": 0}})
    assert not twin.apply_cloud_update(stale, SCHEMA, now=6).changed
    twin.apply_edge_update(update(target={"expected": {"value": "27"}}), SCHEMA, now=7)
    before = twin.to_record()
    lost = update(
        target={"expected": {"value": "28"}, "expected_version": {"cloud": 2, "edge": 0}},
        temperature={"actual": {"value": "20"}},
    )
    with pytest.raises(VersionConflict):
        twin.apply_cloud_update(lost, SCHEMA, now=8)
    assert twin.to_record() == before


CLOUD_CASES = [
    # (cloud version sent, edge version sent, local edge writes first, outcome)
    (2, 0, 0, "accepted"),
    (1, 0, 0, "stale"),  # the same write again (at-least-once delivery)
    (0, 0, 0, "stale"),
    (2, 0, 1, "accepted"),  # a newer cloud write wins over a local write made meanwhile
    (1, 0, 1, "conflict"),  # the same cloud version, an older edge: it lost to the local write
    (1, 2, 1, "accepted"),
    (2, 1, 1, "accepted"),
    (5, 3, 1, "accepted"),
]


@pytest.mark.parametrize(("cloud", "edge", "local_writes", "outcome"), CLOUD_CASES)
def test_cloud_writes_follow_the_version_rules(
    cloud: int, edge: int, local_writes: int, outcome: str
) -> None:
    twin = fresh()  # target: expected_version cloud=1 (from the manifest), edge=0
    for n in range(local_writes):
        twin.apply_edge_update(update(target={"expected": {"value": str(10 + n)}}), SCHEMA, now=2)
    before = twin.to_record()
    if outcome == "conflict":
        with pytest.raises(VersionConflict, match="lost to a local write"):
            twin.apply_cloud_desired("target", "28", Version(cloud, edge), SCHEMA, now=3)
        assert twin.to_record() == before
        return
    result = twin.apply_cloud_desired("target", "28", Version(cloud, edge), SCHEMA, now=3)
    prop = twin.properties["target"]
    if outcome == "stale":
        assert not result.changed
        assert twin.to_record() == before
    else:
        assert result.changed
        assert prop.expected is not None
        assert prop.expected.value == "28"
        assert prop.expected_version.cloud == cloud
        assert prop.expected_version.edge == max(edge, local_writes)  # never goes back


def test_cloud_writes_are_validated_like_local_ones() -> None:
    with pytest.raises(OutOfRange):
        fresh().apply_cloud_desired("target", "99", Version(9, 0), SCHEMA, now=3)


def test_a_changed_manifest_desired_value_is_a_new_cloud_write_and_dropped_properties_are_deleted() -> None:
    twin = fresh()
    changed = DEVICE.model_copy(deep=True)
    props = [p for p in changed.spec.properties if p.name != "mode"]
    target = next(p for p in props if p.name == "target")
    assert target.desired is not None
    new_target = target.model_copy(update={"desired": target.desired.model_copy(update={"value": "24"})})
    props = [new_target if p.name == "target" else p for p in props]
    changed = changed.model_copy(update={"spec": changed.spec.model_copy(update={"properties": props})})
    outcome = twin.sync_definition(changed, DeviceSchema.build(changed, MODEL), now=5)
    by_name = {c.name: c for c in outcome.changes}
    assert by_name["target"].current.expected is not None
    assert by_name["target"].current.expected.value == "24"
    assert by_name["target"].current.expected_version.cloud == 2
    assert by_name["mode"].current.deleted
    assert by_name["mode"].current.to_wire()["metadata"]["type"] == "deleted"
    assert "mode" not in twin.properties
    # The same manifest again changes nothing (a restart does not re-apply old desired values).
    assert not twin.sync_definition(changed, DeviceSchema.build(changed, MODEL), now=6).changed


def test_wire_form_always_carries_expected_and_actual() -> None:
    wire = TwinProperty(type="int").to_wire()
    assert wire["expected"] == {"value": "", "metadata": {"timestamp": 0}}
    assert wire["actual"] == {"value": "", "metadata": {"timestamp": 0}}
    assert wire["metadata"] == {"type": "int"}


# -- properties that hold for any sequence of updates ------------------------------------------------

values = st.sampled_from(["5", "12", "30", "abc", "31", "", "true", "a b", "eco"])
names = st.sampled_from(["temperature", "target", "power", "mode", "unknown"])
sides = st.sampled_from(["expected", "actual"])
steps = st.lists(st.tuples(names, sides, values), min_size=1, max_size=30)


@settings(max_examples=200, deadline=None)
@given(steps)
def test_any_sequence_of_updates_keeps_the_twin_consistent(sequence: list[tuple[str, str, str]]) -> None:
    twin = fresh()
    for now, (name, side, value) in enumerate(sequence, start=10):
        before = twin.to_record()
        try:
            twin.apply_edge_update(update(**{name: {side: {"value": value}}}), SCHEMA, now=now)
        except PermanentError:
            assert twin.to_record() == before
            continue
        prop = twin.properties[name]
        stored = prop.expected if side == "expected" else prop.actual
        assert stored is not None
        assert (stored.value, stored.timestamp) == (value, now)
        version = prop.expected_version if side == "expected" else prop.actual_version
        previous = before["properties"][name]["versions"][1 if side == "expected" else 3]
        assert version.edge == previous + 1
        for pending, desired_value in twin.delta(SCHEMA).items():
            pending_prop = twin.properties[pending]
            assert pending_prop.expected is not None
            assert pending_prop.expected.value == desired_value != ""
    assert DeviceTwin.from_record(twin.to_record()) == twin
