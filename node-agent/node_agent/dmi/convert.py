"""From edgetwin's Device, DeviceModel and twin to KubeEdge's DMI messages, as KubeEdge's edge builds them.

A mapper built with KubeEdge's mapper-framework reads these messages with Go structs that are not
pointers, so a message KubeEdge always fills must always be there, even empty: each property's
``desired`` and ``visitors.configData``, the Device's ``spec.protocol`` (with ``configData``) and
``status`` (NOTES.md, "DMI as a real mapper-framework mapper speaks it"). What a mapper is told:

* ``spec.properties[].desired``: the twin's desired value (set by the cloud, a manifest or an app),
  else the manifest's; this is how a new desired value reaches a framework mapper (``UpdateDevice``).
  ``status.twins[].observedDesired`` carries it too, for mappers built on older framework versions.
* ``configData``: the DeviceModel's ``protocolConfigData`` and per-property ``visitors`` overridden
  key by key by the Device's own, as KubeEdge's edge merges them (``GetOverriddenDevice``).
* configData values as ``google.protobuf.Any`` wrappers, as KubeEdge's ``dataToAny`` makes them
  after its edge read the Device as JSON: a string is a ``StringValue``, a boolean a ``BoolValue``,
  any number a ``FloatValue`` (float32). One deliberate difference: an integer that a float32
  cannot hold exactly (beyond ±2^24, e.g. a 32-bit register mask) travels as an ``Int64Value``,
  which framework mappers decode too, instead of being rounded. Objects, lists and nulls cannot
  travel (KubeEdge refuses the whole Device): ``InvalidManifest`` names the key.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from google.protobuf import any_pb2, json_format, wrappers_pb2

from node_agent.dmi.v1beta1 import api_pb2 as pb
from twin.engine import DeviceTwin
from twin.errors import InvalidManifest
from twin.models import Device, DeviceModel, DeviceProperty, ModelProperty

__all__ = ["ConfigValue", "decode_config_value", "device_message", "encode_config_value", "model_message"]

log = logging.getLogger(__name__)

#: A configData value as a mapper decodes it.
ConfigValue = str | bool | int | float

# Integers up to 2^24 are exact in a float32; KubeEdge sends every number as one.
_FLOAT32_EXACT = 2**24
_INT64 = (-(2**63), 2**63 - 1)


def encode_config_value(value: object) -> any_pb2.Any:
    """One configData value as KubeEdge's edge packs it; ``TypeError`` for what cannot travel."""
    wrapper: (
        wrappers_pb2.StringValue | wrappers_pb2.BoolValue | wrappers_pb2.FloatValue | wrappers_pb2.Int64Value
    )
    if isinstance(value, str):
        wrapper = wrappers_pb2.StringValue(value=value)
    elif isinstance(value, bool):
        wrapper = wrappers_pb2.BoolValue(value=value)
    elif isinstance(value, int) and abs(value) <= _FLOAT32_EXACT:
        wrapper = wrappers_pb2.FloatValue(value=float(value))
    elif isinstance(value, int) and _INT64[0] <= value <= _INT64[1]:
        wrapper = wrappers_pb2.Int64Value(value=value)
    elif isinstance(value, float):
        wrapper = wrappers_pb2.FloatValue(value=value)
    else:
        kind = "an integer beyond 64 bits" if isinstance(value, int) else f"a {type(value).__name__}"
        raise TypeError(f"{kind} cannot travel over DMI (only strings, numbers and booleans)")
    packed = any_pb2.Any()
    packed.Pack(wrapper)
    return packed


_WRAPPERS: dict[str, type[Any]] = {
    "google.protobuf.StringValue": wrappers_pb2.StringValue,
    "google.protobuf.BoolValue": wrappers_pb2.BoolValue,
    "google.protobuf.FloatValue": wrappers_pb2.FloatValue,
    "google.protobuf.Int32Value": wrappers_pb2.Int32Value,
    "google.protobuf.Int64Value": wrappers_pb2.Int64Value,
}


def decode_config_value(packed: any_pb2.Any) -> ConfigValue:
    """What a framework mapper's ``DecodeAnyValue`` gets out of one value; ``ValueError`` otherwise."""
    wrapper_type = _WRAPPERS.get(packed.TypeName())
    if wrapper_type is None:
        raise ValueError(f"configData value of type {packed.type_url!r} is not one a mapper decodes")
    wrapper = wrapper_type()
    packed.Unpack(wrapper)
    value: ConfigValue = wrapper.value
    return value


def _customized(data: Mapping[str, object], where: str) -> pb.CustomizedValue:
    message = pb.CustomizedValue()
    for key, value in data.items():
        try:
            message.data[key].CopyFrom(encode_config_value(value))
        except TypeError as exc:
            raise InvalidManifest(f"{where}.{key}: {exc}") from exc
    return message


def _extra(model: ModelProperty | None, key: str) -> object:
    return (model.model_extra or {}).get(key) if model is not None else None


def _dict(value: object) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def desired_value(prop: DeviceProperty, twin: DeviceTwin | None) -> str:
    """The value the device should have: the twin's, else the manifest's, else ``""``."""
    held = twin.properties.get(prop.name) if twin is not None else None
    if held is not None and not held.deleted and held.expected is not None and held.expected.value:
        return held.expected.value
    return prop.desired.value if prop.desired is not None else ""


def _property(
    device: Device, prop: DeviceProperty, model_prop: ModelProperty | None, desired: pb.TwinProperty
) -> pb.DeviceProperty:
    where = f"Device {device.id} property {prop.name} visitors.configData"
    # As KubeEdge: the model's visitors (if any) first, then the Device's configData key by key.
    model_visitors = _dict(_extra(model_prop, "visitors"))
    protocol_name = str(model_visitors.get("protocolName", "")) if model_visitors else ""
    if not model_visitors and prop.visitors is not None:
        protocol_name = prop.visitors.protocolName
    config = {
        **_dict(model_visitors.get("configData")),
        **(prop.visitors.configData if prop.visitors else {}),
    }
    message = pb.DeviceProperty(
        name=prop.name,
        desired=desired,
        visitors=pb.VisitorConfig(protocolName=protocol_name, configData=_customized(config, where)),
        reportCycle=prop.reportCycle,
        collectCycle=prop.collectCycle,
        reportToCloud=prop.reportToCloud,
    )
    if prop.pushMethod:
        try:
            json_format.ParseDict(prop.pushMethod, message.pushMethod, ignore_unknown_fields=True)
        except json_format.ParseError as exc:
            message.ClearField("pushMethod")
            log.warning(
                "Device %s property %s: pushMethod left out, it cannot be read: %s", device.id, prop.name, exc
            )
    return message


def device_message(device: Device, model: DeviceModel, twin: DeviceTwin | None) -> pb.Device:
    """The DMI ``Device`` for a device; ``InvalidManifest`` if its configData cannot travel."""
    model_config = _dict((model.spec.model_extra or {}).get("protocolConfigData"))
    protocol = pb.ProtocolConfig(
        protocolName=device.protocol_name,
        configData=_customized(
            {**model_config, **device.spec.protocol.configData},
            f"Device {device.id} spec.protocol.configData",
        ),
    )
    properties, twins = [], []
    for prop in device.spec.properties:
        metadata = {k: _text(v) for k, v in (prop.desired.metadata if prop.desired else {}).items()}
        desired = pb.TwinProperty(value=desired_value(prop, twin), metadata=metadata)
        properties.append(_property(device, prop, model.property(prop.name), desired))
        twins.append(pb.Twin(propertyName=prop.name, observedDesired=desired, reported=pb.TwinProperty()))
    methods = []
    for method in device.spec.methods:
        try:
            methods.append(json_format.ParseDict(method, pb.DeviceMethod(), ignore_unknown_fields=True))
        except json_format.ParseError as exc:
            log.warning("Device %s: a method is left out, it cannot be read: %s", device.id, exc)
    status = _dict(device.status)
    report = device.spec.stateReport
    return pb.Device(
        name=device.metadata.name,
        namespace=device.metadata.namespace,
        spec=pb.DeviceSpec(
            deviceModelReference=device.spec.deviceModelRef.name,
            protocol=protocol,
            properties=properties,
            methods=methods,
        ),
        status=pb.DeviceStatus(
            twins=twins,
            reportToCloud=bool(report.reportToCloud if report else False)
            or status.get("reportToCloud") is True,
            reportCycle=report.reportCycle
            if report and report.reportCycle
            else _int(status.get("reportCycle")),
        ),
    )


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def model_message(model: DeviceModel) -> pb.DeviceModel:
    """The DMI ``DeviceModel``: every property the Devices of it use (the registry checks that)."""
    return pb.DeviceModel(
        name=model.metadata.name,
        namespace=model.metadata.namespace,
        spec=pb.DeviceModelSpec(
            properties=[
                pb.ModelProperty(
                    name=p.name,
                    description=p.description,
                    type=p.type.value,
                    accessMode=p.accessMode.value,
                    minimum=p.minimum or "",
                    maximum=p.maximum or "",
                    unit=p.unit,
                )
                for p in model.spec.properties
            ]
        ),
    )
