"""What ``edgetwin twin`` prints: tables of devices and properties, and a live view for ``watch``."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from twin.client import DeviceView, PropertyState, TwinEvent

__all__ = ["LiveView", "describe", "device_json", "device_table", "devices_table", "events_json", "table"]


def stamp(ms: int) -> str:
    if not ms:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def device_table(device: DeviceView) -> str:
    """One device: its state, then a row per property."""
    since = f" (last online {device.last_online})" if device.last_online else ""
    rows = [("PROPERTY", "DESIRED", "REPORTED", "TYPE", "REPORTED AT")]
    for name, prop in sorted(device.properties.items()):
        rows.append(
            (name, prop.desired or "-", prop.reported or "-", prop.type, stamp(prop.reported_timestamp))
        )
    return f"{device.id}: {device.state}{since}\n" + table(rows)


def devices_table(devices: Iterable[DeviceView], *, node_of: dict[str, str] | None = None) -> str:
    """Every device with its state and each property's desired and reported value."""
    header = ("NODE", "DEVICE", "STATE", "PROPERTY", "DESIRED", "REPORTED")
    rows: list[tuple[str, ...]] = [header]
    for device in devices:
        node = (node_of or {}).get(device.id, "-")
        props = sorted(device.properties.items()) or [("-", PropertyState("-", None, None))]
        for index, (name, prop) in enumerate(props):
            first = index == 0
            rows.append(
                (
                    node if first else "",
                    device.id if first else "",
                    device.state if first else "",
                    name,
                    prop.desired or "-",
                    prop.reported or "-",
                )
            )
    if node_of is None:
        rows = [row[1:] for row in rows]
    return table(rows)


def device_json(device: DeviceView) -> dict[str, object]:
    return {
        "device": device.id,
        "state": device.state,
        "lastOnlineTime": device.last_online,
        "properties": {
            n: {"desired": s.desired, "reported": s.reported, "type": s.type}
            for n, s in sorted(device.properties.items())
        },
    }


def describe(event: TwinEvent) -> str:
    """One line per event, for logs and pipes."""
    if event.kind == "delta":
        changes = ", ".join(f"{name}={value}" for name, value in sorted(event.delta.items()))
        return f"delta     {event.device_id}  pending: {changes}"
    if event.kind == "state":
        return f"state     {event.device_id}  {event.state}"
    parts = [
        f"{name}: desired={state.desired or '-'} reported={state.reported or '-'}"
        for name, state in sorted(event.current.items())
    ]
    return f"document  {event.device_id}  " + "; ".join(parts)


@dataclass
class LiveView:
    """The devices a ``watch`` follows, redrawn as a table on a terminal after every event."""

    devices: dict[str, DeviceView] = field(default_factory=dict)
    last: str = ""

    def take(self, event: TwinEvent) -> None:
        known = self.devices.get(event.device_id) or DeviceView(event.device_id, "unknown", "", {})
        if event.kind == "state":
            self.devices[event.device_id] = DeviceView(
                known.id, event.state, event.last_online or known.last_online, known.properties
            )
        elif event.kind == "document":
            properties = {**known.properties, **event.current}
            properties = {n: p for n, p in properties.items() if p.type != "deleted"}
            self.devices[event.device_id] = DeviceView(known.id, known.state, known.last_online, properties)
        self.last = describe(event)

    def render(self) -> str:
        # Clear the screen and home the cursor, then the table and the last event under it.
        body = devices_table(sorted(self.devices.values(), key=lambda d: d.id))
        return f"\x1b[H\x1b[2J{body}\n\nlast: {self.last}\n(Ctrl-C to stop)"


def events_json(event: TwinEvent) -> str:
    return json.dumps({"kind": event.kind, "device": event.device_id, **event.body})
