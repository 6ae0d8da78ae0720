"""Decoding the Kubernetes protobuf bodies kubectl sends when it creates built-in objects.

``kubectl create namespace|configmap|secret|serviceaccount`` uses typed clients that send
``application/vnd.kubernetes.protobuf``: the magic ``k8s\\0``, then a ``runtime.Unknown`` holding
the type and the encoded object. Only those kinds are decoded (to the JSON shape every other path
stores); any other protobuf body gets ``415`` naming the kind. Responses are always JSON, which
client-go accepts whatever it asked for.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from api_server.errors import BadRequest, UnsupportedMediaType

__all__ = ["PROTOBUF", "decode_object"]

PROTOBUF = "application/vnd.kubernetes.protobuf"
_MAGIC = b"k8s\x00"

# A message schema: field number -> (JSON name, type). Types: "str", "bytes", "int", "bool",
# "time", "map" (string -> string), "bmap" (string -> base64 bytes), a nested schema name, and
# a leading "*" for repeated fields.
_SCHEMAS: dict[str, dict[int, tuple[str, str]]] = {
    "Unknown": {
        1: ("typeMeta", "TypeMeta"),
        2: ("raw", "bytes"),
        3: ("contentEncoding", "str"),
        4: ("contentType", "str"),
    },
    "TypeMeta": {1: ("apiVersion", "str"), 2: ("kind", "str")},
    "ObjectMeta": {
        1: ("name", "str"),
        2: ("generateName", "str"),
        3: ("namespace", "str"),
        5: ("uid", "str"),
        6: ("resourceVersion", "str"),
        7: ("generation", "int"),
        8: ("creationTimestamp", "time"),
        11: ("labels", "map"),
        12: ("annotations", "map"),
        13: ("ownerReferences", "*OwnerReference"),
        14: ("finalizers", "*str"),
    },
    "OwnerReference": {
        1: ("kind", "str"),
        3: ("name", "str"),
        4: ("uid", "str"),
        5: ("apiVersion", "str"),
        6: ("controller", "bool"),
        7: ("blockOwnerDeletion", "bool"),
    },
    "Time": {1: ("seconds", "int"), 2: ("nanos", "int")},
    "Namespace": {1: ("metadata", "ObjectMeta"), 2: ("spec", "NamespaceSpec")},
    "NamespaceSpec": {1: ("finalizers", "*str")},
    "ConfigMap": {
        1: ("metadata", "ObjectMeta"),
        2: ("data", "map"),
        3: ("binaryData", "bmap"),
        4: ("immutable", "bool"),
    },
    "Secret": {
        1: ("metadata", "ObjectMeta"),
        2: ("data", "bmap"),
        3: ("type", "str"),
        4: ("stringData", "map"),
        5: ("immutable", "bool"),
    },
    "ServiceAccount": {
        1: ("metadata", "ObjectMeta"),
        2: ("secrets", "*ObjectReference"),
        3: ("imagePullSecrets", "*LocalObjectReference"),
        4: ("automountServiceAccountToken", "bool"),
    },
    "ObjectReference": {
        1: ("kind", "str"),
        2: ("namespace", "str"),
        3: ("name", "str"),
        4: ("uid", "str"),
        5: ("apiVersion", "str"),
        6: ("resourceVersion", "str"),
        7: ("fieldPath", "str"),
    },
    "LocalObjectReference": {1: ("name", "str")},
}
_TOP_LEVEL = ("Namespace", "ConfigMap", "Secret", "ServiceAccount")


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise BadRequest("truncated protobuf varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            yield number, value
        elif wire == 2:
            length, pos = _varint(data, pos)
            yield number, data[pos : pos + length]
            pos += length
        elif wire == 1:
            yield number, int.from_bytes(data[pos : pos + 8], "little")
            pos += 8
        elif wire == 5:
            yield number, int.from_bytes(data[pos : pos + 4], "little")
            pos += 4
        else:
            raise BadRequest(f"unsupported protobuf wire type {wire}")


def _map_entry(data: bytes) -> tuple[str, bytes]:
    key, value = "", b""
    for number, raw in _fields(data):
        if number == 1 and isinstance(raw, bytes):
            key = raw.decode()
        elif number == 2 and isinstance(raw, bytes):
            value = raw
    return key, value


def _value(kind: str, raw: int | bytes) -> Any:
    if kind == "int":
        return raw if isinstance(raw, int) else 0
    if kind == "bool":
        return bool(raw)
    if not isinstance(raw, bytes):
        raise BadRequest(f"protobuf field of type {kind} is not length-delimited")
    if kind == "str":
        return raw.decode()
    if kind == "bytes":
        return raw
    if kind == "time":
        seconds = _message("Time", raw).get("seconds", 0)
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return _message(kind, raw)


def _message(name: str, data: bytes) -> dict[str, Any]:
    schema = _SCHEMAS[name]
    result: dict[str, Any] = {}
    for number, raw in _fields(data):
        if number not in schema:
            continue
        field, kind = schema[number]
        if kind in ("map", "bmap"):
            assert isinstance(raw, bytes)
            key, value = _map_entry(raw)
            result.setdefault(field, {})[key] = (
                value.decode() if kind == "map" else base64.b64encode(value).decode()
            )
        elif kind.startswith("*"):
            result.setdefault(field, []).append(_value(kind[1:], raw))
        else:
            value = _value(kind, raw)
            if value not in ("", 0) or isinstance(value, bool):  # gogo-protobuf writes empty strings too
                result[field] = value
    return result


def decode_object(body: bytes) -> dict[str, Any]:
    """The JSON form of a protobuf-encoded built-in object."""
    if not body.startswith(_MAGIC):
        raise BadRequest("protobuf body without the k8s magic prefix")
    unknown = _message("Unknown", body[len(_MAGIC) :])
    type_meta = unknown.get("typeMeta", {})
    kind = str(type_meta.get("kind", ""))
    if kind not in _TOP_LEVEL:
        raise UnsupportedMediaType(
            f"{PROTOBUF} bodies are decoded for {', '.join(_TOP_LEVEL)} only, not {kind!r}; "
            "send JSON (kubectl apply -f) instead"
        )
    obj = _message(kind, unknown.get("raw", b""))
    return {"apiVersion": type_meta.get("apiVersion", "v1"), "kind": kind, **obj}
