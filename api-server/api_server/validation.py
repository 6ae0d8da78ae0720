"""What every write is checked against before it is stored, whatever the verb.

The body must be an object of the URL's kind and name; its metadata must follow the naming rules;
a custom resource gets its CRD schema's defaults, loses (or is refused for) unknown fields as
``fieldValidation`` asks, and is validated with every failing field named (422 ``Invalid``).
"""

from __future__ import annotations

from typing import Any

from api_server import schema
from api_server.errors import BadRequest, Cause, Invalid
from api_server.meta import metadata_causes
from api_server.resources import ResourceType
from api_server.storage import copy_object

__all__ = ["check_body", "check_kind", "validate"]

Object = dict[str, Any]


def check_kind(rtype: ResourceType, body: Object) -> None:
    """A ``kind`` or ``apiVersion`` in the body must be the URL's (absent ones are filled in)."""
    kind = body.get("kind")
    if kind and kind != rtype.kind:
        raise BadRequest(f"the server rejected our request: kind {kind!r} does not match {rtype.kind!r}")
    api_version = body.get("apiVersion")
    if api_version and str(api_version).rsplit("/", 1)[0] != (rtype.group or api_version):
        raise BadRequest(
            f"the API version in the data ({api_version}) does not match the expected API version "
            f"({rtype.api_version})"
        )


def check_body(rtype: ResourceType, namespace: str, body: Any, *, name: str | None) -> Object:
    """A copy of the body as an object of this type, named as the URL says (``name``, on updates)."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    obj = copy_object(body)
    check_kind(rtype, obj)
    obj["apiVersion"] = rtype.api_version
    obj["kind"] = rtype.kind
    meta = obj.get("metadata")
    if meta is None:
        meta = obj["metadata"] = {}
    if not isinstance(meta, dict):
        raise BadRequest("metadata must be an object")
    if name is not None:
        if meta.get("name") and meta["name"] != name:
            raise BadRequest(
                f"the name of the object ({meta['name']}) does not match the name on the URL ({name})"
            )
        meta["name"] = name
    if rtype.namespaced and meta.get("namespace") and meta["namespace"] != namespace:
        raise BadRequest(
            "the namespace of the provided object does not match the namespace sent on the request"
        )
    return obj


def validate(rtype: ResourceType, obj: Object, field_validation: str) -> list[str]:
    """Default, prune and validate ``obj`` in place; the warnings to send (``fieldValidation=Warn``)."""
    causes: list[Cause] = metadata_causes(obj["metadata"])
    warnings: list[str] = []
    if rtype.schema is not None:
        schema.apply_defaults(rtype.schema, obj)
        unknown = schema.prune_unknown(rtype.schema, obj)
        if unknown:
            if field_validation == "Strict":
                fields = ", ".join(f'unknown field "{u}"' for u in unknown)
                raise BadRequest(f"strict decoding error: {fields}")
            if field_validation != "Ignore":
                warnings = [f'unknown field "{u}"' for u in unknown]
        causes += schema.validate(rtype.schema, obj)
    if causes:
        raise Invalid(rtype.kind, rtype.group, str(obj["metadata"].get("name", "")), causes)
    return warnings
