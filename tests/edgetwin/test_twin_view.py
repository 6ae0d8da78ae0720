"""What `edgetwin twin` prints: tables, and the live view of `watch` (no I/O)."""

from __future__ import annotations

from edgetwin.commands._twin_view import LiveView, devices_table
from twin.client import DeviceView, PropertyState, TwinEvent


def prop(name: str, desired: str | None, reported: str | None) -> PropertyState:
    return PropertyState(name, desired, reported, type="int")


def test_a_device_table_shows_state_once_and_every_property() -> None:
    devices = [DeviceView("default/t", "online", "", {"a": prop("a", "1", "1"), "b": prop("b", None, "7")})]
    lines = devices_table(devices, node_of={"default/t": "edge-node-1"}).splitlines()
    assert lines[0].split() == ["NODE", "DEVICE", "STATE", "PROPERTY", "DESIRED", "REPORTED"]
    assert lines[1].split() == ["edge-node-1", "default/t", "online", "a", "1", "1"]
    assert lines[2].split() == ["b", "-", "7"]


def test_the_live_view_follows_documents_and_state_changes() -> None:
    view = LiveView({"default/t": DeviceView("default/t", "unknown", "", {"a": prop("a", "1", None)})})
    view.take(TwinEvent("document", "default/t", {}, current={"a": prop("a", "1", "1")}))
    view.take(TwinEvent("state", "default/t", {}, state="online", last_online="2026-12-01T10:00:00Z"))
    screen = view.render()
    assert screen.startswith("\x1b[H\x1b[2J")
    row = next(line for line in screen.splitlines() if line.startswith("default/t"))
    assert row.split() == ["default/t", "online", "a", "1", "1"]
    assert "last: state     default/t  online" in screen
