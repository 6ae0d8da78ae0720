"""What the dashboard shows of a Device, a Node or an Event: small JSON views built from the watched objects.

Pure functions, no I/O. They read the objects as the API serves them (tolerant of missing or
odd fields: a Device that does not parse is still shown, with the problem that keeps it from its
node) and the DeviceModels cloud-sync already parsed, and give the page only what it displays:
per property the desired value (``spec``), the reported value and its time (``status``), the
model's type, access mode, bounds and unit, and whether the device has caught up with the
desired value. Times are milliseconds since the epoch (``None`` when unknown), which the page
shows as "3 s ago".
"""

from __future__ import annotations

from typing import Any

from cloud_sync.checks import Problem
from cloud_sync.kube import Obj
from cloud_sync.node_objects import parse_time, ready_condition
from cloud_sync.watches import object_key
from twin.errors import InvalidValue
from twin.models import AccessMode, DeviceModel, PropertyType
from twin.values import PropertySchema

__all__ = ["View", "device_view", "event_view", "model_key", "node_view"]

#: A view as sent to the page (JSON-ready).
View = dict[str, Any]


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _ms(text: object) -> int | None:
    seconds = parse_time(text)
    return None if seconds is None else round(seconds * 1000)


def model_key(obj: Obj) -> str | None:
    """``namespace/name`` of the Device's DeviceModel, if it names one."""
    name = _dict(_dict(obj.get("spec")).get("deviceModelRef")).get("name")
    namespace = _dict(obj.get("metadata")).get("namespace") or "default"
    return f"{namespace}/{name}" if isinstance(name, str) else None


def _twins(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    twins = status.get("twins")
    if not isinstance(twins, list):
        return {}
    return {
        t["propertyName"]: t for t in twins if isinstance(t, dict) and isinstance(t.get("propertyName"), str)
    }


def _property_view(prop: dict[str, Any], twin: dict[str, Any], model: DeviceModel | None) -> View:
    name = str(prop["name"])
    desired = _text(_dict(prop.get("desired")).get("value"))
    reported = _dict(twin.get("reported"))
    reported_value = _text(reported.get("value"))
    stamp = _dict(reported.get("metadata")).get("timestamp")
    model_prop = model.property(name) if model is not None else None
    view: View = {
        "name": name,
        "desired": desired or None,
        "reported": reported_value,
        "reportedAt": int(stamp) if isinstance(stamp, str | int) and str(stamp).isdigit() else None,
        "observedDesired": _text(_dict(twin.get("observedDesired")).get("value")),
        "type": None,
        "writable": False,
        "minimum": None,
        "maximum": None,
        "unit": "",
        "inSync": None,
    }
    if model_prop is None:
        return view
    view |= {
        "type": model_prop.type.value,
        "writable": model_prop.accessMode == AccessMode.READ_WRITE and model_prop.type != PropertyType.STREAM,
        "minimum": model_prop.minimum,
        "maximum": model_prop.maximum,
        "unit": model_prop.unit,
    }
    if desired and reported_value is not None:
        try:
            schema = PropertySchema.from_model(model_prop, model=model)
        except InvalidValue:  # the model's bounds are not numbers: compare the text
            view["inSync"] = desired == reported_value
        else:
            view["inSync"] = schema.same(desired, reported_value)
    return view


def device_view(obj: Obj, model: DeviceModel | None, problem: Problem | None) -> View:
    """A Device as the page shows it; ``model`` is its DeviceModel if cloud-sync could parse it."""
    metadata = _dict(obj.get("metadata"))
    spec = _dict(obj.get("spec"))
    status = _dict(obj.get("status"))
    twins = _twins(status)
    properties = spec.get("properties")
    return {
        "id": object_key(obj),
        "namespace": metadata.get("namespace") or "default",
        "name": metadata.get("name"),
        "node": _text(spec.get("nodeName")) or "",
        "model": _text(_dict(spec.get("deviceModelRef")).get("name")),
        "protocol": _text(_dict(spec.get("protocol")).get("protocolName")),
        "state": _text(status.get("state")) or "unknown",
        "lastOnline": _ms(status.get("lastOnlineTime")),
        "problem": {"reason": problem.reason, "message": problem.message} if problem is not None else None,
        "properties": [
            _property_view(prop, twins.get(prop["name"], {}), model)
            for prop in (properties if isinstance(properties, list) else [])
            if isinstance(prop, dict) and isinstance(prop.get("name"), str)
        ],
    }


def node_view(name: str, node: Obj | None, lease: Obj | None, devices: int) -> View:
    """An edge node: its Ready condition and last heartbeat (its Lease's renewal, or the condition's).

    ``node`` is ``None`` for a node that Devices name but that never sent a heartbeat.
    """
    ready = ready_condition(node) or {}
    heartbeats = [
        t
        for t in (_ms(ready.get("lastHeartbeatTime")), _ms(_dict(_dict(lease).get("spec")).get("renewTime")))
        if t is not None
    ]
    node_status = _dict(_dict(node).get("status"))
    info = _dict(node_status.get("nodeInfo"))
    addresses = node_status.get("addresses")
    address = next(
        (
            a.get("address")
            for a in (addresses if isinstance(addresses, list) else [])
            if isinstance(a, dict) and a.get("type") == "InternalIP"
        ),
        None,
    )
    if node is None:
        state, reason, message = "NotRegistered", "", "no heartbeat from this node yet"
    else:
        status = _text(ready.get("status"))
        state = "Ready" if status == "True" else "NotReady"
        reason, message = _text(ready.get("reason")) or "", _text(ready.get("message")) or ""
    return {
        "name": name,
        "state": state,
        "reason": reason,
        "message": message,
        "lastHeartbeat": max(heartbeats) if heartbeats else None,
        "since": _ms(ready.get("lastTransitionTime")),
        "address": address,
        "os": _text(info.get("operatingSystem")),
        "arch": _text(info.get("architecture")),
        "version": _text(info.get("kubeletVersion")),
        "devices": devices,
    }


def event_view(obj: Obj) -> View:
    """A Kubernetes Event about a Device or a Node."""
    involved = _dict(obj.get("involvedObject"))
    metadata = _dict(obj.get("metadata"))
    time = (
        _ms(obj.get("lastTimestamp"))
        or _ms(obj.get("eventTime"))
        or _ms(obj.get("firstTimestamp"))
        or _ms(metadata.get("creationTimestamp"))
    )
    count = obj.get("count")
    return {
        "id": object_key(obj),
        "type": _text(obj.get("type")) or "Normal",
        "reason": _text(obj.get("reason")) or "",
        "message": _text(obj.get("message")) or "",
        "kind": _text(involved.get("kind")) or "",
        "object": "/".join(str(p) for p in (involved.get("namespace"), involved.get("name")) if p),
        "count": count if isinstance(count, int) else 1,
        "time": time,
    }
