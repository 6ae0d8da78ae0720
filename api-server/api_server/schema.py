"""A CRD's ``openAPIV3Schema`` applied to objects: defaulting, pruning and validation.

The structural-schema subset that CRDs use: ``type``, ``properties``, ``required``, ``items``,
``additionalProperties``, ``enum``, ``nullable``, ``default``, ``minimum``/``maximum`` (and
exclusive), ``minLength``/``maxLength``, ``pattern``, ``minItems``/``maxItems``,
``minProperties``/``maxProperties``, ``allOf``/``anyOf``/``oneOf``/``not``,
``x-kubernetes-preserve-unknown-fields``, ``x-kubernetes-int-or-string`` and
``x-kubernetes-embedded-resource``. CEL rules (``x-kubernetes-validations``) are not evaluated.
Errors name the field the way the real server does (``spec.properties[0].type``).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from api_server.errors import Cause

__all__ = ["apply_defaults", "prune_unknown", "validate"]

Schema = Mapping[str, Any]

_ROOT_KEEP = ("apiVersion", "kind", "metadata")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _show(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return '"object"'
    if isinstance(value, list):
        return '"array"'
    return str(value)


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _is_type(value: Any, expected: str) -> bool:
    if expected == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if expected == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if expected == "string":
        return isinstance(value, str)
    if expected == "boolean":
        return isinstance(value, bool)
    if expected == "array":
        return isinstance(value, list)
    if expected == "object":
        return isinstance(value, dict)
    return True


# -- defaulting ---------------------------------------------------------------------------------


def apply_defaults(schema: Schema, value: Any) -> None:
    """Fill in ``default`` for absent properties, recursively, in place."""
    if isinstance(value, dict):
        props = schema.get("properties")
        if isinstance(props, dict):
            for key, sub in props.items():
                if key not in value and isinstance(sub, dict) and "default" in sub:
                    value[key] = copy.deepcopy(sub["default"])
                if key in value and isinstance(sub, dict):
                    apply_defaults(sub, value[key])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key, item in value.items():
                if not isinstance(props, dict) or key not in props:
                    apply_defaults(extra, item)
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for item in value:
                apply_defaults(items, item)


# -- pruning ------------------------------------------------------------------------------------


def prune_unknown(schema: Schema, value: Any, path: str = "", *, root: bool = True) -> list[str]:
    """Remove fields the schema does not declare (unless preserved); return their paths."""
    removed: list[str] = []
    if isinstance(value, dict):
        if schema.get("x-kubernetes-preserve-unknown-fields") is True and "properties" not in schema:
            return removed
        props = schema.get("properties")
        props = props if isinstance(props, dict) else {}
        extra = schema.get("additionalProperties")
        preserve = schema.get("x-kubernetes-preserve-unknown-fields") is True
        embedded = schema.get("x-kubernetes-embedded-resource") is True
        for key in list(value):
            if (root or embedded) and key in _ROOT_KEEP:
                continue
            sub = props.get(key)
            if isinstance(sub, dict):
                removed += prune_unknown(sub, value[key], _join(path, key), root=False)
            elif isinstance(extra, dict):
                removed += prune_unknown(extra, value[key], _join(path, key), root=False)
            elif extra is True or preserve:
                continue
            else:
                removed.append(_join(path, key))
                del value[key]
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for index, item in enumerate(value):
                removed += prune_unknown(items, item, f"{path}[{index}]", root=False)
    return removed


# -- validation ---------------------------------------------------------------------------------


def validate(schema: Schema, value: Any, path: str = "") -> list[Cause]:
    """Every violation of ``schema`` in ``value``, each naming its field."""
    causes: list[Cause] = []
    _validate(schema, value, path, causes, root=True)
    return causes


def _validate(schema: Schema, value: Any, path: str, causes: list[Cause], *, root: bool = False) -> None:
    where = path or "<root>"
    if value is None:
        if not schema.get("nullable") and schema.get("type"):
            causes.append(
                Cause(
                    where, f'Invalid value: "null": {where} in body must be of type {schema["type"]}: "null"'
                )
            )
        return
    expected = schema.get("type")
    if schema.get("x-kubernetes-int-or-string") is True:
        if not (_is_type(value, "integer") or isinstance(value, str)):
            causes.append(
                Cause(
                    where,
                    f"Invalid value: {_show(value)}: "
                    f'{where} in body must be of type int-or-string: "{_type_name(value)}"',
                )
            )
            return
    elif isinstance(expected, str) and not _is_type(value, expected):
        causes.append(
            Cause(
                where,
                f"Invalid value: {_show(value)}: "
                f'{where} in body must be of type {expected}: "{_type_name(value)}"',
                "FieldValueTypeInvalid",
            )
        )
        return

    enum = schema.get("enum")
    if isinstance(enum, list) and value not in enum:
        supported = ", ".join(_show(v) for v in enum)
        causes.append(
            Cause(
                where,
                f"Unsupported value: {_show(value)}: supported values: {supported}",
                "FieldValueNotSupported",
            )
        )

    if isinstance(value, str):
        _validate_string(schema, value, where, causes)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        _validate_number(schema, value, where, causes)
    elif isinstance(value, list):
        if "minItems" in schema and len(value) < int(schema["minItems"]):
            causes.append(
                Cause(
                    where,
                    f"Invalid value: {len(value)}: "
                    f"{where} in body should have at least {schema['minItems']} items",
                )
            )
        if "maxItems" in schema and len(value) > int(schema["maxItems"]):
            causes.append(
                Cause(
                    where,
                    f"Too many: {len(value)}: must have at most {schema['maxItems']} items",
                    "FieldValueTooMany",
                )
            )
        items = schema.get("items")
        if isinstance(items, dict):
            for index, item in enumerate(value):
                _validate(items, item, f"{path}[{index}]", causes)
    elif isinstance(value, dict):
        _validate_object(schema, value, path, causes, root=root)

    for sub in schema.get("allOf") or []:
        if isinstance(sub, dict):
            _validate(sub, value, path, causes)
    any_of = [s for s in schema.get("anyOf") or [] if isinstance(s, dict)]
    if any_of and all(validate(s, value, path) for s in any_of):
        causes.append(
            Cause(
                where,
                f"Invalid value: {_show(value)}: {where} in body must match at least one schema in anyOf",
            )
        )
    one_of = [s for s in schema.get("oneOf") or [] if isinstance(s, dict)]
    if one_of and sum(1 for s in one_of if not validate(s, value, path)) != 1:
        causes.append(
            Cause(
                where,
                f"Invalid value: {_show(value)}: {where} in body must match exactly one schema in oneOf",
            )
        )
    negated = schema.get("not")
    if isinstance(negated, dict) and not validate(negated, value, path):
        causes.append(
            Cause(where, f"Invalid value: {_show(value)}: {where} in body must not match the schema in not")
        )


def _validate_string(schema: Schema, value: str, where: str, causes: list[Cause]) -> None:
    if "minLength" in schema and len(value) < int(schema["minLength"]):
        causes.append(
            Cause(
                where,
                f"Invalid value: {_show(value)}: "
                f"{where} in body should be at least {schema['minLength']} chars long",
            )
        )
    if "maxLength" in schema and len(value) > int(schema["maxLength"]):
        causes.append(
            Cause(where, f"Too long: may not be more than {schema['maxLength']} bytes", "FieldValueTooLong")
        )
    pattern = schema.get("pattern")
    if isinstance(pattern, str) and not re.search(pattern, value):
        causes.append(
            Cause(where, f"Invalid value: {_show(value)}: {where} in body should match '{pattern}'")
        )


def _validate_number(schema: Schema, value: float, where: str, causes: list[Cause]) -> None:
    minimum = schema.get("minimum")
    if isinstance(minimum, int | float):
        if schema.get("exclusiveMinimum") is True and value <= minimum:
            causes.append(
                Cause(
                    where, f"Invalid value: {_show(value)}: {where} in body should be greater than {minimum}"
                )
            )
        elif value < minimum:
            causes.append(
                Cause(
                    where,
                    f"Invalid value: {_show(value)}: "
                    f"{where} in body should be greater than or equal to {minimum}",
                )
            )
    maximum = schema.get("maximum")
    if isinstance(maximum, int | float):
        if schema.get("exclusiveMaximum") is True and value >= maximum:
            causes.append(
                Cause(where, f"Invalid value: {_show(value)}: {where} in body should be less than {maximum}")
            )
        elif value > maximum:
            causes.append(
                Cause(
                    where,
                    f"Invalid value: {_show(value)}: "
                    f"{where} in body should be less than or equal to {maximum}",
                )
            )


def _validate_object(
    schema: Schema, value: dict[str, Any], path: str, causes: list[Cause], *, root: bool
) -> None:
    where = path or "<root>"
    for key in schema.get("required") or []:
        if key not in value:
            causes.append(Cause(_join(path, str(key)), "Required value", "FieldValueRequired"))
    if "minProperties" in schema and len(value) < int(schema["minProperties"]):
        causes.append(
            Cause(
                where,
                f"Invalid value: {len(value)}: "
                f"{where} in body should have at least {schema['minProperties']} properties",
            )
        )
    if "maxProperties" in schema and len(value) > int(schema["maxProperties"]):
        causes.append(
            Cause(
                where,
                f"Too many: {len(value)}: must have at most {schema['maxProperties']} items",
                "FieldValueTooMany",
            )
        )
    props = schema.get("properties")
    props = props if isinstance(props, dict) else {}
    extra = schema.get("additionalProperties")
    for key, item in value.items():
        if root and key == "metadata":
            continue
        sub = props.get(key)
        if isinstance(sub, dict):
            _validate(sub, item, _join(path, key), causes)
        elif isinstance(extra, dict):
            _validate(extra, item, _join(path, key), causes)
