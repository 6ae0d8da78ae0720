"""From a Device and its DeviceModel to what a plugin sees (``MappedDevice``).

KubeEdge spreads a device's settings over two objects: the DeviceModel gives each property its type
and access mode (and may carry ``protocolConfigData`` and per-property ``visitors``), the Device
gives the connection (``spec.protocol.configData``) and each property's visitor and cycles. The
Device's keys override the model's, key by key. The plugin's pydantic models validate the result;
a bad device config makes the whole device unusable (``InvalidManifest``), a bad visitor only its
property, so that one typo does not silence the rest of a PLC.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from mappers.plugin import AnyMapper, MappedDevice, MappedProperty
from twin.errors import InvalidManifest, TypeMismatch
from twin.models import Device, DeviceModel, cycle_seconds
from twin.values import PropertySchema

__all__ = ["Binding", "bind_device"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Binding:
    device: MappedDevice[Any, Any]
    problems: tuple[str, ...]  # properties left out, with the reason


def _errors(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '<config>'}: {err['msg']}" for err in exc.errors()
    )


def _dict(value: object) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


def _extra(model: BaseModel | None, key: str) -> object:
    if model is None or model.model_extra is None:
        return None
    return model.model_extra.get(key)


def bind_device(
    device: Device,
    model: DeviceModel | None,
    plugin: AnyMapper,
    *,
    default_collect_cycle: float = 1.0,
) -> Binding:
    """Validate a device for ``plugin``; ``InvalidManifest`` when its connection config is unusable."""
    config_data = {
        **_dict(_extra(model.spec if model else None, "protocolConfigData")),
        **device.spec.protocol.configData,
    }
    try:
        config = plugin.protocol_config.model_validate(config_data)
    except ValidationError as exc:
        raise InvalidManifest(
            f"device {device.id}: spec.protocol.configData for {plugin.protocol or device.protocol_name}: "
            f"{_errors(exc)}"
        ) from exc
    props: list[MappedProperty[Any]] = []
    problems: list[str] = []
    for prop in device.spec.properties:
        model_prop = model.property(prop.name) if model is not None else None
        visitor_data = _dict(_dict(_extra(model_prop, "visitors")).get("configData"))
        if prop.visitors is not None:
            visitor_data.update(prop.visitors.configData)
        try:
            visitor = plugin.visitor_config.model_validate(visitor_data)
        except ValidationError as exc:
            problems.append(f"{prop.name}: visitors.configData: {_errors(exc)}")
            continue
        try:
            schema = (
                PropertySchema.from_model(model_prop, model=model)
                if model_prop is not None
                else PropertySchema(prop.name)
            )
        except TypeMismatch as exc:
            problems.append(f"{prop.name}: {exc}")
            continue
        collect = (
            cycle_seconds(prop.collectCycle, what=f"{device.id} {prop.name} collectCycle")
            if prop.collectCycle
            else default_collect_cycle
        )
        report = (
            cycle_seconds(prop.reportCycle, what=f"{device.id} {prop.name} reportCycle")
            if prop.reportCycle
            else 0.0
        )
        props.append(MappedProperty(prop.name, visitor, schema, collect, report))
    return Binding(MappedDevice(device.id, config, tuple(props)), tuple(problems))
