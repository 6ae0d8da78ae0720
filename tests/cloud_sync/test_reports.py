"""Reports merged into a Device's status (cloud_sync.reports): pure, table-driven, no sockets."""

from __future__ import annotations

from typing import Any

from cloud_sync.reports import Pending, Ticket, merge_status
from twin.link import DeviceReport, ReportedValue

TYPES = {"temp": "float", "mode": "string"}


def device(
    status: dict[str, Any] | None = None, state_report: dict[str, Any] | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "properties": [{"name": "temp", "reportToCloud": True}, {"name": "mode", "reportToCloud": False}]
    }
    if state_report is not None:
        spec["stateReport"] = state_report
    return {"metadata": {"name": "d"}, "spec": spec, **({"status": status} if status is not None else {})}


def pending(*reports: DeviceReport) -> Pending:
    held = Pending()
    for report in reports:
        held.add("n", report, None)
    return held


def value(text: str, at: int) -> ReportedValue:
    return ReportedValue(value=text, timestamp=at)


def test_reports_within_a_cycle_merge_to_the_newest_value_of_each_property() -> None:
    held = pending(
        DeviceReport(twins={"temp": value("1", 100)}),
        DeviceReport(twins={"temp": value("3", 300)}),
        DeviceReport(twins={"temp": value("2", 200)}),  # late: older than what is held
    )
    status, left_out = merge_status(device(), held, TYPES)
    assert status == {
        "twins": [
            {
                "propertyName": "temp",
                "reported": {"value": "3", "metadata": {"timestamp": "300", "type": "float"}},
            }
        ]
    }
    assert left_out == []


def test_an_older_value_never_replaces_a_newer_one_in_the_status() -> None:
    current = {
        "twins": [{"propertyName": "temp", "reported": {"value": "9", "metadata": {"timestamp": "900"}}}]
    }
    status, _ = merge_status(device(current), pending(DeviceReport(twins={"temp": value("1", 100)})), TYPES)
    assert status is None  # nothing to write


def test_properties_that_do_not_report_or_do_not_exist_are_left_out() -> None:
    held = pending(DeviceReport(twins={"mode": value("eco", 1), "ghost": value("1", 1)}))
    status, left_out = merge_status(device(), held, TYPES)
    assert status is None
    assert left_out == ["mode: its reportToCloud is not true", "ghost: not a property of the Device"]


def test_states_are_written_as_the_crd_spells_them() -> None:
    for sent, written in (("ok", "online"), ("disconnected", "offline"), ("unhealthy", "unhealthy")):
        status, _ = merge_status(device(), pending(DeviceReport(state=sent)), TYPES)
        assert status == {"state": written}
    status, left_out = merge_status(device(), pending(DeviceReport(state="exploded")), TYPES)
    assert status is None
    assert "not one of" in left_out[0]


def test_no_state_goes_into_the_status_when_state_report_to_cloud_is_false() -> None:
    obj = device(state_report={"reportToCloud": False})
    status, left_out = merge_status(obj, pending(DeviceReport(state="online", last_online="t")), TYPES)
    assert status is None
    assert left_out == ["state: stateReport.reportToCloud is false"]


def test_what_arrived_after_a_snapshot_stays_for_the_next_write() -> None:
    held = Pending()
    ticket = Ticket("n", "report", 1, {"d"})
    held.add("n", DeviceReport(twins={"temp": value("1", 100)}, state="online"), ticket)
    snapshot = held.snapshot()
    held.add("n", DeviceReport(twins={"temp": value("2", 200)}), None)
    assert held.settle(snapshot) == [ticket]
    assert held.twins == {"temp": value("2", 200)}
    assert held.state is None
    assert not held.empty
