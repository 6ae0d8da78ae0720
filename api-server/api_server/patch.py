"""The patch formats clients send: JSON merge patch, JSON patch and (approximate) strategic merge.

``kubectl apply``/``edit`` send merge patches for custom resources and strategic merge patches for
built-in types; ``kubectl patch --type json`` sends RFC 6902 operations. Strategic merge here is a
merge patch that also merges lists of objects by their key (``name`` and the few other keys
Kubernetes types use) and honours the ``$patch`` and ``$deleteFromPrimitiveList`` directives; the
``$setElementOrder`` and ``$retainKeys`` directives are accepted and ignored.

A JSON patch is held to the limits of ``limits.py`` as it is applied: at most 10,000 operations,
copies adding at most 16 MiB in all (each ``copy`` of an object into itself doubles it), and no
value placed deeper than ``MAX_DEPTH`` (a copy into itself also doubles its depth).
"""

from __future__ import annotations

import copy
from typing import Any

import orjson

from api_server.errors import BadRequest, Cause, Invalid, RequestEntityTooLarge, UnsupportedMediaType
from api_server.limits import MAX_BODY_BYTES, MAX_JSON_PATCH_OPERATIONS, check_depth

__all__ = [
    "APPLY_PATCH",
    "JSON_PATCH",
    "MERGE_PATCH",
    "STRATEGIC_PATCH",
    "apply_json_patch",
    "apply_merge_patch",
    "apply_strategic_merge_patch",
    "check_patch_type",
]

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
_PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH, APPLY_PATCH)  # as kube-apiserver lists them

# Merge keys of the list fields of the built-in types, by field name (what kubectl's structs say).
_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "conditions": "type",
    "imagePullSecrets": "name",
    "tolerations": "key",
    "finalizers": "",
    "ownerReferences": "uid",
    "addresses": "type",
    "taints": "key",
    "hostAliases": "ip",
    "containerStatuses": "name",
    "initContainerStatuses": "name",
}
# Lists whose key depends on where they are, by dotted path from the object: a Service's ports
# merge by ``port`` where a container's merge by ``containerPort``.
_MERGE_KEYS_AT = {"spec.ports": "port"}


def check_patch_type(content_type: str, *, custom: bool) -> None:
    """415 for a patch type the resource does not take (strategic merge on a custom resource)."""
    accepted = [t for t in _PATCH_TYPES if not (custom and t == STRATEGIC_PATCH)]
    if content_type not in accepted:
        raise UnsupportedMediaType(
            "the body of the request was in an unknown format - accepted media types include: "
            f"{', '.join(accepted)}"
        )


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge, ``null`` deletes, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value)
    return result


# -- JSON patch ---------------------------------------------------------------------------------


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise BadRequest(
            f'the server rejected our request due to an error in our request: invalid JSON pointer "{path}"'
        )
    return [_unescape(t) for t in path[1:].split("/")]


def _container(doc: Any, tokens: list[str], path: str) -> Any:
    current = doc
    for token in tokens:
        if isinstance(current, dict):
            if token not in current:
                raise Invalid("", "", "", [Cause(path, f"missing path: {path}", "FieldValueNotFound")])
            current = current[token]
        elif isinstance(current, list):
            current = current[_index(current, token, path)]
        else:
            raise Invalid("", "", "", [Cause(path, f"missing path: {path}", "FieldValueNotFound")])
    return current


def _index(container: list[Any], token: str, path: str, *, allow_end: bool = False) -> int:
    if token == "-" and allow_end:
        return len(container)
    try:
        index = int(token)
    except ValueError:
        raise BadRequest(f"invalid array index {token!r} in {path}") from None
    limit = len(container) if allow_end else len(container) - 1
    if index < 0 or index > limit:
        raise BadRequest(f"the server rejected our request: index {index} out of bounds in {path}")
    return index


def _get(doc: Any, path: str) -> Any:
    tokens = _pointer(path)
    return _container(doc, tokens, path)


def _add(doc: Any, path: str, value: Any) -> Any:
    tokens = _pointer(path)
    check_depth(value, above=len(tokens))
    if not tokens:
        return value
    parent = _container(doc, tokens[:-1], path)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, path, allow_end=True), value)
    else:
        raise BadRequest(f"cannot add at {path}")
    return doc


def _remove(doc: Any, path: str) -> Any:
    tokens = _pointer(path)
    if not tokens:
        raise BadRequest("cannot remove the whole document")
    parent = _container(doc, tokens[:-1], path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise Invalid(
                "",
                "",
                "",
                [
                    Cause(
                        path, f"Unable to remove nonexistent key: {last}: missing value", "FieldValueNotFound"
                    )
                ],
            )
        del parent[last]
    elif isinstance(parent, list):
        del parent[_index(parent, last, path)]
    else:
        raise BadRequest(f"cannot remove {path}")
    return doc


def apply_json_patch(target: Any, operations: Any) -> Any:
    """RFC 6902: add, remove, replace, move, copy, test (a failed test is a 422)."""
    if not isinstance(operations, list):
        raise BadRequest("json patch must be a list of operations")
    if len(operations) > MAX_JSON_PATCH_OPERATIONS:
        raise RequestEntityTooLarge(
            f"The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, "
            f"got {len(operations)}"
        )
    doc = copy.deepcopy(target)
    copied = 0
    for op in operations:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise BadRequest(f"invalid json patch operation: {op!r}")
        kind, path = op["op"], str(op["path"])
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            doc = _remove(doc, path)
        elif kind == "replace":
            _get(doc, path)
            doc = _remove(doc, path) if _pointer(path) else doc
            doc = _add(doc, path, copy.deepcopy(op.get("value")))
        elif kind in ("move", "copy"):
            source = str(op.get("from", ""))
            value = _get(doc, source)
            if kind == "copy":
                copied += len(orjson.dumps(value))
                if copied > MAX_BODY_BYTES:
                    message = (
                        f"Unable to copy, the accumulated size increase of copy is {copied}, "
                        f"exceeding the limit {MAX_BODY_BYTES}"
                    )
                    raise Invalid("", "", "", [Cause(path, message)])
            value = copy.deepcopy(value)
            if kind == "move":
                doc = _remove(doc, source)
            doc = _add(doc, path, value)
        elif kind == "test":
            if _get(doc, path) != op.get("value"):
                raise Invalid("", "", "", [Cause(path, f"testing value {path} failed: test failed")])
        else:
            raise BadRequest(f"unknown json patch operation {kind!r}")
    return doc


# -- strategic merge ----------------------------------------------------------------------------


def apply_strategic_merge_patch(target: Any, patch: Any) -> Any:
    """A merge patch that merges keyed lists of objects, as kubectl expects for built-in types."""
    return _smp(target, patch, "")


def _smp(target: Any, patch: Any, path: str) -> Any:
    """``path``: the dotted field names from the object down to here (list positions left out)."""
    if isinstance(patch, list):
        return _smp_list(target if isinstance(target, list) else [], patch, path)
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return None
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$setElementOrder/") or key in ("$retainKeys", "$patch"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            name = key.split("/", 1)[1]
            if isinstance(result.get(name), list) and isinstance(value, list):
                result[name] = [v for v in result[name] if v not in value]
            continue
        if value is None:
            result.pop(key, None)
        else:
            merged = _smp(result.get(key), value, f"{path}.{key}" if path else key)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
    return result


def _smp_list(target: list[Any], patch: list[Any], path: str) -> list[Any]:
    key = _MERGE_KEYS_AT.get(path, _MERGE_KEYS.get(path.rsplit(".", 1)[-1]))
    if key is None:
        return [copy.deepcopy(v) for v in patch if not (isinstance(v, dict) and v.get("$patch"))]
    if key == "":
        # a set of primitives (finalizers): union, keeping order
        result = list(target)
        for value in patch:
            if value not in result:
                result.append(copy.deepcopy(value))
        return result
    result = copy.deepcopy(target)
    for item in patch:
        if not isinstance(item, dict):
            continue
        if item.get("$patch") == "replace":
            return [copy.deepcopy(v) for v in patch if isinstance(v, dict) and v.get("$patch") != "replace"]
        position = next(
            (i for i, cur in enumerate(result) if isinstance(cur, dict) and cur.get(key) == item.get(key)),
            None,
        )
        if item.get("$patch") == "delete":
            if position is not None:
                del result[position]
            continue
        if position is None:
            result.append(_smp({}, item, path))
        else:
            result[position] = _smp(result[position], item, path)
    return result
