"""Whether a Device can go to its node, and if not, why: the checks behind its Events and condition.

The node's twin refuses a device whose model is missing or lacks one of its properties, and a
desired value of the wrong type or out of range (``twin.registry``, ``twin.values``); a device like
that must never reach it, or it would stop the node from taking its other devices. So the same
rules run here, with the same code (``DeviceSchema``, ``PropertySchema``), and a device that breaks
one gets a ``Problem`` (a reason for its Event and condition, and a message that names the field)
instead of going down. What is sent down carries no ``status`` and no ``metadata.managedFields``.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from twin.engine import DeviceSchema
from twin.errors import InvalidValue, UnknownProperty
from twin.models import Device, DeviceModel
from twin.values import PropertySchema

__all__ = ["ModelCheck", "Problem", "check_device", "check_model", "sendable", "valid_node_name"]

#: Node names become MQTT topic levels and broker user names: Kubernetes' own rule for names.
_NODE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a Device is not sent down: ``reason`` (CamelCase, for its Event) and a message."""

    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class ModelCheck:
    key: str
    model: DeviceModel | None
    problem: str  # why the DeviceModel cannot be used ("" if it can)
    revision: str


def sendable(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of an object as the node gets it: no ``status``, no ``metadata.managedFields``."""
    clean = {key: value for key, value in obj.items() if key != "status"}
    metadata = dict(clean.get("metadata") or {})
    metadata.pop("managedFields", None)
    clean["metadata"] = metadata
    return copy.deepcopy(clean)


def valid_node_name(name: str) -> bool:
    """Whether ``name`` can be a node's name: a Kubernetes name, an MQTT topic level and a broker user."""
    return bool(_NODE_NAME.fullmatch(name))


def revision_of(obj: Mapping[str, Any]) -> str:
    metadata = obj.get("metadata") or {}
    return f"{metadata.get('uid', '')}:{metadata.get('generation') or metadata.get('resourceVersion', '')}"


def _errors(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '<object>'}: {err['msg']}" for err in exc.errors()[:5]
    )


def check_model(key: str, obj: Mapping[str, Any]) -> ModelCheck:
    try:
        model = DeviceModel.model_validate(sendable(obj))
    except ValidationError as exc:
        return ModelCheck(key, None, f"DeviceModel {key} is not valid: {_errors(exc)}", revision_of(obj))
    return ModelCheck(key, model, "", revision_of(obj))


def check_device(
    obj: Mapping[str, Any], models: Mapping[str, ModelCheck]
) -> tuple[Device | None, ModelCheck | None, Problem | None]:
    """The Device as sent down and its model, or the problem that keeps it from its node."""
    try:
        device = Device.model_validate(sendable(obj))
    except ValidationError as exc:
        return None, None, Problem("InvalidDevice", f"the Device is not valid: {_errors(exc)}")
    node = device.spec.nodeName
    if not node:
        return device, None, Problem("NoNodeName", "spec.nodeName is empty: the device goes to no node")
    if not _NODE_NAME.fullmatch(node):
        return (
            device,
            None,
            Problem("InvalidNodeName", f"spec.nodeName {node[:80]!r} is not a valid node name"),
        )
    checked = models.get(device.model_key)
    if checked is None:
        return (
            device,
            None,
            Problem(
                "UnknownDeviceModel",
                f"spec.deviceModelRef.name: there is no DeviceModel {device.model_key}",
            ),
        )
    if checked.model is None:
        return device, checked, Problem("InvalidDeviceModel", checked.problem)
    try:
        schema = DeviceSchema.build(device, checked.model)
    except UnknownProperty as exc:
        return device, checked, Problem("UnknownProperty", str(exc))
    except InvalidValue as exc:  # the model's minimum or maximum is not a number
        return device, checked, Problem("InvalidDeviceModel", str(exc))
    for index, prop in enumerate(device.spec.properties):
        if prop.desired is None or not prop.desired.value:
            continue
        prop_schema: PropertySchema = schema.properties[prop.name]
        try:
            prop_schema.check_desired(prop.desired.value)
        except InvalidValue as exc:
            return (
                device,
                checked,
                Problem("InvalidDesiredValue", f"spec.properties[{index}].desired.value: {exc}"),
            )
    return device, checked, None
