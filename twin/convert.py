"""KubeEdge's older Device/DeviceModel manifests (v1alpha1, v1alpha2) rewritten as v1beta1.

KubeEdge's published demos (the LED, the traffic light, the counter, the Modbus and Bluetooth
samples) are written for ``devices.kubeedge.io/v1alpha2`` (some for v1alpha1): types as
``type.int.accessMode``, protocols as ``spec.protocol.modbus`` + ``common.tcp``, per-property access
in ``spec.propertyVisitors``, desired values in ``status.twins``, and a ``nodeSelector``. KubeEdge
≥ 1.15 and edgetwin speak v1beta1 (``twin.models``). ``convert`` maps one shape onto the other and
lists, one line each, what has no place in v1beta1, naming the object and the field.

It lives beside the models, not in the command line, because it is knowledge of the models: pure
functions over parsed YAML, no I/O, usable by anything that meets old objects (``edgetwin convert``
today; a cluster that still serves v1alpha2 later).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from twin.errors import InvalidManifest
from twin.manifests import parse_manifest
from twin.models import API_GROUP, API_VERSION

__all__ = ["Converted", "Source", "convert"]

OLD_VERSIONS = (f"{API_GROUP}/v1alpha1", f"{API_GROUP}/v1alpha2")
_TYPES = {
    "int": "INT",
    "string": "STRING",
    "double": "DOUBLE",
    "float": "FLOAT",
    "boolean": "BOOLEAN",
    "bytes": "BYTES",
}
# v1alpha2 protocol and visitor sections, and the protocolName each becomes (edgetwin's plugins).
_PROTOCOLS = {"modbus": "modbus", "opcua": "opcua", "bluetooth": "ble"}
_SECRETS = ("password", "privateKey", "certificate")
_CLUSTER_METADATA = (
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
)
_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
_NANOSECONDS = 100_000_000  # the cycle a KubeEdge < 1.18 manifest writes in ns (twin.models)


@dataclass(frozen=True)
class Source:
    """One parsed YAML document and where it came from (``file (document 2)``)."""

    where: str
    doc: object


@dataclass
class Converted:
    documents: list[dict[str, Any]] = field(default_factory=list)
    #: What has no place in v1beta1: ``"Device default/led: spec.data: ...; not carried over"``.
    notes: list[str] = field(default_factory=list)
    models: int = 0
    devices: int = 0


@dataclass
class _Context:
    node: str | None
    notes: list[str]
    # v1alpha1 models carry visitors; v1beta1 puts them on each Device: "ns/model" -> visitors.
    model_visitors: dict[str, list[Any]] = field(default_factory=dict)


def convert(sources: Iterable[Source], *, node: str | None = None) -> Converted:
    """Convert every old Device/DeviceModel; other documents (v1beta1, other kinds) pass unchanged.

    ``node`` sets ``spec.nodeName`` of every Device (instead of reading it from the nodeSelector).
    ``InvalidManifest`` for a document that is not a mapping or converts to an invalid object.
    """
    result = Converted()
    ctx = _Context(node, result.notes)
    docs = [(s.where, s.doc) for s in sources]
    for where, doc in docs:
        if not isinstance(doc, dict):
            raise InvalidManifest(f"{where}: a manifest must be a mapping, got {type(doc).__name__}")
        if _is_old(doc) and doc.get("kind") == "DeviceModel":
            visitors = (doc.get("spec") or {}).get("propertyVisitors")
            if visitors:
                ctx.model_visitors[_key(doc)] = list(visitors)
    used_visitors: set[str] = set()
    models: list[dict[str, Any]] = []
    for where, doc in docs:
        assert isinstance(doc, dict)
        kind = doc.get("kind")
        if not _is_old(doc) or kind not in ("Device", "DeviceModel"):
            result.documents.append(doc)
            continue
        if kind == "DeviceModel":
            out = _model(doc, ctx)
            models.append(out)
            result.models += 1
        else:
            out = _device(doc, ctx)
            used_visitors.add(_model_key(doc))
            result.devices += 1
        parse_manifest(out, source=where)  # v1beta1 as twin.models reads it, or InvalidManifest
        result.documents.append(out)
    _model_protocols(models, result.documents, ctx)
    for key in ctx.model_visitors.keys() - used_visitors:
        ctx.notes.append(
            f"DeviceModel {key}: spec.propertyVisitors: v1beta1 keeps visitors on each Device and no "
            "Device of this model is among the inputs; not carried over"
        )
    return result


# -- objects ----------------------------------------------------------------------------------------


def _model(doc: dict[str, Any], ctx: _Context) -> dict[str, Any]:
    label = f"DeviceModel {_key(doc)}"
    spec = _mapping(doc.get("spec"))
    properties = []
    for index, prop in enumerate(_mappings(spec.get("properties"))):
        where = f"spec.properties[{prop.get('name') or index}]"
        out: dict[str, Any] = {"name": prop.get("name")}
        if prop.get("description"):
            out["description"] = prop["description"]
        out.update(_property_type(prop.get("type"), f"{label}: {where}.type", ctx))
        for key in prop.keys() - {"name", "description", "type"}:
            ctx.notes.append(f"{label}: {where}.{key}: not a v1beta1 model field; not carried over")
        properties.append(out)
    for key in spec.keys() - {"properties", "propertyVisitors"}:
        ctx.notes.append(f"{label}: spec.{key}: not a v1beta1 model field; not carried over")
    metadata = _metadata(doc, label, ctx)
    return {
        "apiVersion": API_VERSION,
        "kind": "DeviceModel",
        "metadata": metadata,
        "spec": {"properties": properties},
    }


def _property_type(typ: object, where: str, ctx: _Context) -> dict[str, Any]:
    if isinstance(typ, str):  # already v1beta1-like: "INT"
        return {"type": typ.upper(), "accessMode": "ReadWrite"}
    kinds = [k for k in _mapping(typ) if k in _TYPES]
    if not kinds:
        ctx.notes.append(f"{where}: no int/string/double/float/boolean/bytes type given; written as STRING")
        return {"type": "STRING", "accessMode": "ReadWrite"}
    if len(kinds) > 1:
        ctx.notes.append(f"{where}: several types ({', '.join(kinds)}); kept {kinds[0]}")
    body = _mapping(_mapping(typ)[kinds[0]])
    out: dict[str, Any] = {"type": _TYPES[kinds[0]], "accessMode": body.get("accessMode") or "ReadWrite"}
    for bound in ("minimum", "maximum"):
        if body.get(bound) is not None:
            out[bound] = _text(body[bound])
    if body.get("unit"):
        out["unit"] = body["unit"]
    if body.get("defaultValue") not in (None, ""):
        ctx.notes.append(
            f"{where}.{kinds[0]}.defaultValue {_text(body['defaultValue'])!r}: v1beta1 models have no "
            "default value (a Device's spec.properties[].desired.value is the place); not carried over"
        )
    for key in body.keys() - {"accessMode", "minimum", "maximum", "unit", "defaultValue"}:
        ctx.notes.append(f"{where}.{kinds[0]}.{key}: not a v1beta1 field; not carried over")
    return out


def _device(doc: dict[str, Any], ctx: _Context) -> dict[str, Any]:
    label = f"Device {_key(doc)}"
    spec = _mapping(doc.get("spec"))
    out: dict[str, Any] = {}
    if "deviceModelRef" in spec:
        out["deviceModelRef"] = spec["deviceModelRef"]
    node = ctx.node or spec.get("nodeName") or _node_name(spec.get("nodeSelector"), label, ctx)
    if node:
        out["nodeName"] = node
    name, config = _protocol(_mapping(spec.get("protocol")), label, ctx)
    out["protocol"] = {"protocolName": name, "configData": config} if name else {}
    visitors = [*_list(spec.get("propertyVisitors"))]
    inherited = ctx.model_visitors.get(_model_key(doc), [])
    own = {_mapping(v).get("propertyName") for v in visitors}
    visitors += [v for v in inherited if _mapping(v).get("propertyName") not in own]
    properties: dict[str, dict[str, Any]] = {}
    for index, visitor in enumerate(_mappings(visitors)):
        prop_name = visitor.get("propertyName")
        where = f"{label}: spec.propertyVisitors[{prop_name or index}]"
        prop = properties.setdefault(str(prop_name), {"name": prop_name})
        for cycle in ("collectCycle", "reportCycle"):
            if isinstance(visitor.get(cycle), int):
                prop[cycle] = _milliseconds(visitor[cycle])
        prop.update(_visitor(visitor, name, where, ctx))
    for index, twin in enumerate(_mappings(_mapping(doc.get("status")).get("twins"))):
        prop_name = str(twin.get("propertyName") or index)
        desired = _mapping(twin.get("desired"))
        if desired.get("value") not in (None, ""):
            entry = {"value": _text(desired["value"])}
            if desired.get("metadata"):
                entry["metadata"] = desired["metadata"]
            properties.setdefault(prop_name, {"name": prop_name})["desired"] = entry
        if _mapping(twin.get("reported")).get("value") not in (None, ""):
            ctx.notes.append(
                f"{label}: status.twins[{prop_name}].reported: reported values come from the device, "
                "not the manifest; not carried over"
            )
    out["properties"] = list(properties.values())
    for key in spec.keys() - {"deviceModelRef", "nodeName", "nodeSelector", "protocol", "propertyVisitors"}:
        ctx.notes.append(f"{label}: spec.{key}: v1beta1 has no such field; not carried over")
    for key in _mapping(doc.get("status")).keys() - {"twins"}:
        ctx.notes.append(f"{label}: status.{key}: written by the system, not the manifest; not carried over")
    return {"apiVersion": API_VERSION, "kind": "Device", "metadata": _metadata(doc, label, ctx), "spec": out}


def _model_protocols(models: list[dict[str, Any]], documents: list[dict[str, Any]], ctx: _Context) -> None:
    """A v1beta1 model names its protocol: take it from the Devices of the model among the inputs."""
    protocols: dict[str, set[str]] = {}
    for doc in documents:
        if doc.get("apiVersion") == API_VERSION and doc.get("kind") == "Device":
            name = _mapping(_mapping(doc.get("spec")).get("protocol")).get("protocolName")
            if name:
                protocols.setdefault(_model_key(doc), set()).add(name)
    for doc in models:
        found = sorted(protocols.get(_key(doc), ()))
        if found:
            doc["spec"] = {"protocol": found[0], **doc["spec"]}
        if not found:
            why = "no Device of this model among the inputs names a protocol; set it by hand"
            ctx.notes.append(f"DeviceModel {_key(doc)}: spec.protocol: {why}")
        elif len(found) > 1:
            why = f"its Devices use {', '.join(found)}; wrote {found[0]}"
            ctx.notes.append(f"DeviceModel {_key(doc)}: spec.protocol: {why}")


# -- parts ------------------------------------------------------------------------------------------


def _protocol(proto: Mapping[str, Any], label: str, ctx: _Context) -> tuple[str, dict[str, Any]]:
    kinds = [k for k in (*_PROTOCOLS, "customizedProtocol") if proto.get(k) is not None]
    if not kinds:
        ctx.notes.append(
            f"{label}: spec.protocol: none given; set spec.protocol.protocolName and each property's "
            "visitors (a Raspberry Pi pin: protocolName gpio, visitors.configData.pin)"
        )
        return "", {}
    for extra in kinds[1:]:
        ctx.notes.append(
            f"{label}: spec.protocol.{extra}: a second protocol; kept {kinds[0]}, not carried over"
        )
    kind = kinds[0]
    body = _mapping(proto[kind])
    if kind == "customizedProtocol":
        name, config = str(body.get("protocolName") or ""), dict(_mapping(body.get("configData")))
    elif kind == "modbus" and ("tcp" in body or "rtu" in body):  # v1alpha1: modbus.tcp / modbus.rtu
        name, config = "modbus", _modbus_v1alpha1(body)
    else:
        name, config = _PROTOCOLS[kind], dict(body)
    common = _mapping(proto.get("common"))
    if common.get("tcp"):
        config = {"communicateMode": "TCP", **_mapping(common["tcp"]), **config}
    if common.get("com"):
        config = {"communicateMode": "RTU", **_mapping(common["com"]), **config}
    config.update(_mapping(common.get("customizedValues")))
    config.update({k: v for k, v in common.items() if k not in ("tcp", "com", "customizedValues")})
    for secret in _SECRETS:
        if config.get(secret):
            ctx.notes.append(
                f"{label}: spec.protocol.{kind}.{secret}: written into configData.{secret} as it was; "
                "keep secrets in files or Secrets, not in manifests"
            )
    return name, config


def _modbus_v1alpha1(body: Mapping[str, Any]) -> dict[str, Any]:
    tcp, rtu = _mapping(body.get("tcp")), _mapping(body.get("rtu"))
    config = {"communicateMode": "TCP", **tcp} if tcp else {"communicateMode": "RTU", **rtu}
    slave = config.get("slaveID")
    if isinstance(slave, str) and slave.isdigit():
        config["slaveID"] = int(slave)  # v1alpha1 wrote the TCP slave id as a string
    return config


def _visitor(visitor: Mapping[str, Any], protocol: str, where: str, ctx: _Context) -> dict[str, Any]:
    kinds = [k for k in (*_PROTOCOLS, "customizedProtocol") if visitor.get(k) is not None]
    if not kinds:
        ctx.notes.append(f"{where}: no modbus/opcua/bluetooth/customizedProtocol visitor; not carried over")
        return {}
    kind = kinds[0]
    body = _mapping(visitor[kind])
    if kind == "customizedProtocol":
        name, config = str(body.get("protocolName") or protocol), dict(_mapping(body.get("configData")))
    else:
        name, config = _PROTOCOLS[kind], dict(body)
    config.update(_mapping(visitor.get("customizedValues")))
    known = {"propertyName", "collectCycle", "reportCycle", "customizedValues", *kinds}
    for key in visitor.keys() - known:
        ctx.notes.append(f"{where}.{key}: not a v1beta1 property field; not carried over")
    if protocol and name != protocol:
        ctx.notes.append(f"{where}: a {name} visitor on a {protocol} device; kept as written")
    return {"visitors": {"protocolName": name, "configData": config}}


def _node_name(selector: object, label: str, ctx: _Context) -> str:
    if selector is None:
        ctx.notes.append(f"{label}: spec.nodeName: no nodeSelector to take it from; set it or pass --node")
        return ""
    values: list[str] = []
    other = False
    for term in _mappings(_mapping(selector).get("nodeSelectorTerms")):
        for expression in _mappings([*_list(term.get("matchExpressions")), *_list(term.get("matchFields"))]):
            if expression.get("operator") == "In":
                values += [str(v) for v in _list(expression.get("values"))]
            else:
                other = True
    if len(set(values)) == 1 and not other:
        return values[0]
    ctx.notes.append(
        f"{label}: spec.nodeSelector: v1beta1 binds a device to one node (spec.nodeName) and this "
        f"selector names {', '.join(values) or 'no node by name'}; set nodeName or pass --node"
    )
    return ""


def _metadata(doc: dict[str, Any], label: str, ctx: _Context) -> dict[str, Any]:
    meta = dict(_mapping(doc.get("metadata")))
    dropped = [key for key in _CLUSTER_METADATA if meta.pop(key, None) is not None]
    annotations = dict(_mapping(meta.get("annotations")))
    if annotations.pop(_LAST_APPLIED, None) is not None:
        dropped.append(f"annotations[{_LAST_APPLIED}]")
        meta["annotations"] = annotations
        if not annotations:
            del meta["annotations"]
    if dropped:
        ctx.notes.append(
            f"{label}: metadata.{', metadata.'.join(dropped)}: set by the cluster that held the old "
            "object; not carried over"
        )
    return meta


def _milliseconds(cycle: int) -> int:
    return cycle // 1_000_000 if cycle >= _NANOSECONDS else cycle


def _is_old(doc: Mapping[str, Any]) -> bool:
    return doc.get("apiVersion") in OLD_VERSIONS


def _key(doc: Mapping[str, Any]) -> str:
    meta = _mapping(doc.get("metadata"))
    return f"{meta.get('namespace') or 'default'}/{meta.get('name') or '<no name>'}"


def _model_key(doc: Mapping[str, Any]) -> str:
    meta, spec = _mapping(doc.get("metadata")), _mapping(doc.get("spec"))
    return f"{meta.get('namespace') or 'default'}/{_mapping(spec.get('deviceModelRef')).get('name')}"


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _mappings(value: object) -> list[dict[str, Any]]:
    """The items of a YAML list, each as a mapping (anything else as an empty one)."""
    return [_mapping(item) for item in _list(value)]


def _text(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)
