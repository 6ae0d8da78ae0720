"""``meta.k8s.io/v1 Table`` responses: how printer columns reach ``kubectl get``.

kubectl asks for ``application/json;as=Table;v=v1;g=meta.k8s.io`` and prints the cells the server
computes. Custom resources get their CRD's ``additionalPrinterColumns`` (simple JSONPath: ``.a.b``,
``[0]``, ``[*]``), built-in types the columns kubectl users know (a Pod's Ready/Status/Restarts, a
Node's Status/Roles).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from api_server.resources import PrinterColumn, ResourceType

__all__ = ["human_duration", "jsonpath_values", "table"]

Object = dict[str, Any]

_TOKEN_RE = re.compile(r"\.([A-Za-z0-9_$@-]+)|\[(\*|-?\d+)\]|\['([^']+)'\]")


def jsonpath_values(obj: Any, path: str) -> list[Any]:
    """Values at a simple JSONPath (``.spec.nodeName``, ``.status.twins[*].propertyName``)."""
    text = path.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    text = text.removeprefix("$")
    current = [obj]
    position = 0
    while position < len(text):
        match = _TOKEN_RE.match(text, position)
        if not match:
            return []
        position = match.end()
        name, index, quoted = match.groups()
        key = name if name is not None else quoted
        following: list[Any] = []
        for value in current:
            if key is not None:
                if isinstance(value, dict) and key in value:
                    following.append(value[key])
            elif isinstance(value, list):
                if index == "*":
                    following.extend(value)
                else:
                    i = int(index)
                    if -len(value) <= i < len(value):
                        following.append(value[i])
        current = following
    return current


def human_duration(seconds: float) -> str:
    """Kubernetes' ``duration.HumanDuration`` (``5m``, ``3h2m``, ``4d``)."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        rest = s % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if days == 0 else f"{hours // 24 // 365}y{days}d"
    return f"{hours // 24 // 365}y"


def age(timestamp: object) -> str:
    if not isinstance(timestamp, str) or not timestamp:
        return "<unknown>"
    try:
        then = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return "<invalid>"
    return human_duration((datetime.now(UTC) - then).total_seconds())


def _cell(column: PrinterColumn, obj: Object) -> Any:
    values = jsonpath_values(obj, column.json_path)
    if not values:
        return None
    if column.type == "date":
        return age(values[0])
    if len(values) > 1:
        return ",".join(_text(v) for v in values)
    value = values[0]
    if column.type == "integer" and isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    if column.type == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        return value
    if column.type == "boolean" and isinstance(value, bool):
        return value
    return _text(value)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        import json

        return json.dumps(value, separators=(",", ":"))
    return str(value)


# -- built-in printers --------------------------------------------------------------------------

# (name, type[, priority]) per column, and the function computing a row's cells
Printer = tuple[list[tuple[Any, ...]], Callable[[Object], list[Any]]]


def _meta(obj: Object) -> Object:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _node_row(obj: Object) -> list[Any]:
    conditions = obj.get("status", {}).get("conditions") or []
    ready = next((c for c in conditions if isinstance(c, dict) and c.get("type") == "Ready"), None)
    status = "Unknown"
    if ready is not None:
        status = "Ready" if ready.get("status") == "True" else "NotReady"
    if obj.get("spec", {}).get("unschedulable"):
        status += ",SchedulingDisabled"
    roles = sorted(
        key.split("/", 1)[1]
        for key in (_meta(obj).get("labels") or {})
        if key.startswith("node-role.kubernetes.io/")
    )
    version = obj.get("status", {}).get("nodeInfo", {}).get("kubeletVersion", "")
    return [status, ",".join(roles) or "<none>", age(_meta(obj).get("creationTimestamp")), version]


def _pod_status(obj: Object, statuses: list[Any]) -> str:
    """kubectl's STATUS: the phase, or what a container is waiting for or ended with (printPod)."""
    status = obj.get("status", {})
    reason = str(status.get("reason") or status.get("phase") or "Pending")
    running = False
    for container in reversed(statuses):
        state = container.get("state") or {}
        waiting, terminated = state.get("waiting") or {}, state.get("terminated")
        if waiting.get("reason"):
            reason = str(waiting["reason"])
        elif isinstance(terminated, dict) and terminated.get("reason"):
            reason = str(terminated["reason"])
        elif isinstance(terminated, dict):
            signal = terminated.get("signal")
            reason = f"Signal:{signal}" if signal else f"ExitCode:{terminated.get('exitCode', 0)}"
        elif container.get("ready") and "running" in state:
            running = True
    if reason == "Completed" and running:
        conditions = status.get("conditions") or []
        ready = any(
            isinstance(c, dict) and c.get("type") == "Ready" and c.get("status") == "True" for c in conditions
        )
        reason = "Running" if ready else "NotReady"
    if _meta(obj).get("deletionTimestamp"):
        reason = "Terminating"
    return reason


def _pod_row(obj: Object) -> list[Any]:
    spec_containers = obj.get("spec", {}).get("containers") or []
    statuses = [s for s in obj.get("status", {}).get("containerStatuses") or [] if isinstance(s, dict)]
    ready = sum(1 for s in statuses if s.get("ready"))
    restarts = sum(int(s.get("restartCount", 0)) for s in statuses)
    return [
        f"{ready}/{len(spec_containers)}",
        _pod_status(obj, statuses),
        restarts,
        age(_meta(obj).get("creationTimestamp")),
        obj.get("status", {}).get("podIP") or "<none>",
        obj.get("spec", {}).get("nodeName") or "<none>",
    ]


def _event_row(obj: Object) -> list[Any]:
    involved = obj.get("involvedObject") or {}
    last = obj.get("lastTimestamp") or obj.get("eventTime") or _meta(obj).get("creationTimestamp")
    return [
        age(last),
        obj.get("type", ""),
        obj.get("reason", ""),
        f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}",
        obj.get("message", ""),
    ]


_BUILTIN: dict[str, Printer] = {
    "namespaces": (
        [("Status", "string"), ("Age", "string")],
        lambda o: [o.get("status", {}).get("phase", "Active"), age(_meta(o).get("creationTimestamp"))],
    ),
    "nodes": (
        [("Status", "string"), ("Roles", "string"), ("Age", "string"), ("Version", "string")],
        _node_row,
    ),
    "pods": (
        [
            ("Ready", "string"),
            ("Status", "string"),
            ("Restarts", "integer"),
            ("Age", "string"),
            ("IP", "string", 1),
            ("Node", "string", 1),
        ],
        _pod_row,
    ),
    "events": (
        [
            ("Last Seen", "string"),
            ("Type", "string"),
            ("Reason", "string"),
            ("Object", "string"),
            ("Message", "string"),
        ],
        _event_row,
    ),
    "configmaps": (
        [("Data", "integer"), ("Age", "string")],
        lambda o: [
            len(o.get("data") or {}) + len(o.get("binaryData") or {}),
            age(_meta(o).get("creationTimestamp")),
        ],
    ),
    "secrets": (
        [("Type", "string"), ("Data", "integer"), ("Age", "string")],
        lambda o: [o.get("type", "Opaque"), len(o.get("data") or {}), age(_meta(o).get("creationTimestamp"))],
    ),
    "leases": (
        [("Holder", "string"), ("Age", "string")],
        lambda o: [o.get("spec", {}).get("holderIdentity", ""), age(_meta(o).get("creationTimestamp"))],
    ),
    "customresourcedefinitions": (
        [("Created At", "date")],
        lambda o: [_meta(o).get("creationTimestamp", "")],
    ),
}

_AGE = PrinterColumn(name="Age", type="date", json_path=".metadata.creationTimestamp")


def _columns(rtype: ResourceType) -> tuple[list[dict[str, Any]], Callable[[Object], list[Any]]]:
    name_column = {
        "name": "Name",
        "type": "string",
        "format": "name",
        "priority": 0,
        "description": "Name must be unique within a namespace.",
    }
    if not rtype.custom and rtype.plural in _BUILTIN:
        spec, row = _BUILTIN[rtype.plural]
        definitions = [name_column] + [
            {
                "name": c[0],
                "type": c[1],
                "format": "",
                "priority": c[2] if len(c) > 2 else 0,
                "description": c[0],
            }
            for c in spec
        ]
        return definitions, row
    # As the real server: a CRD's own columns replace the default Age column, they do not add to it.
    columns = rtype.printer_columns or (_AGE,)
    definitions = [name_column] + [
        {
            "name": c.name,
            "type": "string" if c.type == "date" else c.type,
            "format": c.format,
            "priority": c.priority,
            "description": c.description or c.name,
        }
        for c in columns
    ]
    return definitions, lambda obj: [_cell(c, obj) for c in columns]


def _partial(obj: Object, include: str) -> Object | None:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": _meta(obj)}


def table(
    rtype: ResourceType,
    objects: Iterable[Object],
    *,
    include: str = "Metadata",
    list_meta: Object | None = None,
) -> Object:
    """A Table of ``objects`` with the columns of ``rtype``."""
    definitions, row = _columns(rtype)
    rows = []
    for obj in objects:
        entry: Object = {"cells": [_meta(obj).get("name", ""), *row(obj)]}
        partial = _partial(obj, include)
        if partial is not None:
            entry["object"] = partial
        rows.append(entry)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta or {},
        "columnDefinitions": definitions,
        "rows": rows,
    }
