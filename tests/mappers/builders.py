"""Device and DeviceModel objects for mapper tests, written the way a KubeEdge user writes them."""

from __future__ import annotations

from typing import Any

from mappers.binding import bind_device
from mappers.plugin import AnyMapper, MappedDevice
from twin.manifests import Manifests
from twin.models import Device, DeviceModel

NODE = "edge-node-1"


def model(name: str, protocol: str, props: dict[str, str], *, read_only: tuple[str, ...] = ()) -> DeviceModel:
    """``props`` maps property name to DeviceModel type (INT, FLOAT...)."""
    return DeviceModel.model_validate(
        {
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "protocol": protocol,
                "properties": [
                    {"name": n, "type": t, "accessMode": "ReadOnly" if n in read_only else "ReadWrite"}
                    for n, t in props.items()
                ],
            },
        }
    )


def device(
    name: str,
    model_name: str,
    protocol: str,
    config: dict[str, Any],
    visitors: dict[str, dict[str, Any]],
    *,
    collect_ms: int = 50,
    report_ms: int = 0,
    desired: dict[str, str] | None = None,
    namespace: str = "default",
) -> Device:
    props = []
    for prop, visitor in visitors.items():
        entry: dict[str, Any] = {
            "name": prop,
            "collectCycle": collect_ms,
            "reportCycle": report_ms,
            "visitors": {"protocolName": protocol, "configData": visitor},
        }
        if desired and prop in desired:
            entry["desired"] = {"value": desired[prop]}
        props.append(entry)
    return Device.model_validate(
        {
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "deviceModelRef": {"name": model_name},
                "nodeName": NODE,
                "protocol": {"protocolName": protocol, "configData": config},
                "properties": props,
            },
        }
    )


def manifests(*objects: Device | DeviceModel) -> Manifests:
    result = Manifests()
    for obj in objects:
        if isinstance(obj, Device):
            result.devices[obj.id] = obj
        else:
            result.models[obj.key] = obj
    return result


def mapped(dev: Device, mod: DeviceModel, plugin: AnyMapper) -> MappedDevice[Any, Any]:
    binding = bind_device(dev, mod, plugin)
    assert binding.problems == ()
    return binding.device
