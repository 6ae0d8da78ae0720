"""``meta.k8s.io/v1 Table`` responses: how printer columns reach ``kubectl get``.

kubectl asks for ``application/json;as=Table;v=v1;g=meta.k8s.io`` and prints the cells the server
computes. Custom resources get their CRD's ``additionalPrinterColumns`` (simple JSONPath: ``.a.b``,
``[0]``, ``[*]``), built-in types the columns kubectl users know (``printers.py``: a Pod's
Ready/Status/Restarts, a Node's Status/Roles, a Service's Cluster-IP and Port(s)).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from api_server.printers import BUILTIN_PRINTERS, age, object_meta
from api_server.resources import PrinterColumn, ResourceType

__all__ = ["jsonpath_values", "table"]

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


_AGE = PrinterColumn(name="Age", type="date", json_path=".metadata.creationTimestamp")


def _columns(rtype: ResourceType) -> tuple[list[dict[str, Any]], Callable[[Object], list[Any]]]:
    name_column = {
        "name": "Name",
        "type": "string",
        "format": "name",
        "priority": 0,
        "description": "Name must be unique within a namespace.",
    }
    if not rtype.custom and rtype.plural in BUILTIN_PRINTERS:
        spec, row = BUILTIN_PRINTERS[rtype.plural]
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
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": object_meta(obj)}


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
        entry: Object = {"cells": [object_meta(obj).get("name", ""), *row(obj)]}
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
