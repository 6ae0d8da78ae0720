"""The outbox: what a device owes the cloud, derived from its twin and the acknowledged marks (no sockets)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from node_agent.outbox import (
    DEFAULT_REPORT_CYCLE,
    OUTBOX_FILE,
    Marks,
    Outbox,
    ReportRules,
    cloud_state,
    owed_desired,
    owed_report,
)
from tests.node_agent.cloud_peer import thermo
from twin.engine import DeviceTwin, TwinProperty, TwinValue, Version

RULES = ReportRules.of(thermo("t1", report_ms=250))


def twin(**values: tuple[str, int]) -> DeviceTwin:
    result = DeviceTwin("default/t1", state="ok", last_online="2026-01-01T00:00:00Z")
    for name, (value, stamp) in values.items():
        result.properties[name] = TwinProperty(actual=TwinValue(value, stamp), type="float")
    return result


def test_report_rules_take_the_smallest_cycle_of_the_reported_properties_and_never_the_others() -> None:
    device = thermo("t1", report_ms=250)
    assert ReportRules(frozenset({"temp", "target"}), state=True, cycle=0.25) == RULES
    unset = device.model_copy(
        update={
            "spec": device.spec.model_copy(
                update={
                    "properties": [p.model_copy(update={"reportCycle": 0}) for p in device.spec.properties]
                }
            )
        }
    )
    assert ReportRules.of(unset).cycle == DEFAULT_REPORT_CYCLE
    legacy = thermo("t1", report_ms=10_000_000_000)  # a KubeEdge < 1.18 manifest: nanoseconds
    assert ReportRules.of(legacy).cycle == 10.0
    assert not ReportRules.of(thermo("t1", state_report={"reportToCloud": False})).state
    assert ReportRules.of(thermo("t1", state_report={"reportToCloud": True})).state


def test_only_values_newer_than_the_marks_are_owed_each_in_its_latest_state() -> None:
    current = twin(temp=("21.5", 2000), target=("20", 1000), secret=("x", 3000))
    owed = owed_report(current, RULES, Marks(reported={"target": 1000}, state=("ok", "2026-01-01T00:00:00Z")))
    assert owed.reported == {"temp": TwinValue("21.5", 2000)}  # secret is reportToCloud: false
    assert owed.state is None  # acknowledged already
    assert not owed_report(
        current,
        RULES,
        Marks(reported={"temp": 2000, "target": 1000}, state=owed.state or ("ok", "2026-01-01T00:00:00Z")),
    )


def test_an_acknowledgement_moves_the_marks_by_what_the_message_carried_never_back() -> None:
    marks = Marks()
    newer = owed_report(twin(temp=("22.5", 3000)), RULES, marks)
    older = owed_report(twin(temp=("21.5", 2000)), RULES, marks)
    marks.advance(newer)
    marks.advance(older)  # a late ack of an older message
    assert marks.reported == {"temp": 3000}
    assert not owed_report(twin(temp=("22.5", 3000)), RULES, marks).reported


def test_edge_desired_values_are_owed_while_their_pair_is_newer_than_the_clouds() -> None:
    current = DeviceTwin("default/t1")
    current.properties["target"] = TwinProperty(expected=TwinValue("25", 5), expected_version=Version(3, 2))
    current.properties["mode"] = TwinProperty(expected=TwinValue("eco", 5), expected_version=Version(1, 0))
    owed = owed_desired(current, Marks(desired={"target": (3, 1), "mode": (1, 0)}))
    assert owed.desired == {"target": ("25", (3, 2))}
    assert not owed_desired(current, Marks(desired={"target": (4, 0), "mode": (1, 0)}))  # the cloud is ahead


def test_device_states_are_spelled_as_the_crd_spells_them() -> None:
    assert [cloud_state(s) for s in ("ok", "disconnected", "online", "unhealthy", "unknown")] == [
        "online",
        "offline",
        "online",
        "unhealthy",
        "unknown",
    ]


async def test_marks_and_sequence_numbers_survive_a_restart(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    outbox.load()
    outbox.acknowledge("default/t1", owed_report(twin(temp=("21.5", 2000)), RULES, Marks()))
    outbox.cloud_holds("default/t1", {"target": (2, 1)})
    last = outbox.next_seq()
    await outbox.save()
    again = Outbox(tmp_path)
    again.load()
    assert again.marks("default/t1").reported == {"temp": 2000}
    assert again.marks("default/t1").desired == {"target": (2, 1)}
    assert again.next_seq() > last


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not json",
        b"[]",
        b'{"format": 1, "seq": 1, "devices": {"d/x": {"reported": 5}}}',
        b'{"format": 9}',
    ],
    ids=["empty", "garbage", "list", "bad-marks", "other-format"],
)
def test_an_unreadable_outbox_is_moved_aside_and_the_node_starts_with_no_marks(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / OUTBOX_FILE).write_bytes(content)
    outbox = Outbox(tmp_path)
    with caplog.at_level(logging.ERROR):
        outbox.load()
    assert outbox.marks("default/t1") == Marks()
    assert not (tmp_path / OUTBOX_FILE).exists()
    assert len(list(tmp_path.glob(f"{OUTBOX_FILE}.*.corrupt"))) == 1
    assert "sends everything it holds to the cloud once more" in caplog.text


def test_the_outbox_stays_the_same_size_whatever_the_telemetry_rate(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    for stamp in range(10_000):  # ten thousand acknowledged values of one property
        outbox.acknowledge("default/t1", owed_report(twin(temp=(f"{stamp}.5", stamp)), RULES, Marks()))
    assert len(outbox.snapshot()) < 300
    outbox.forget("default/t1")
    assert b"default/t1" not in outbox.snapshot()
