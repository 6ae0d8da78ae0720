"""Request bodies: read within the size limit and decoded (JSON, YAML, protobuf) within the others.

Every verb that takes a body gets it from here, so every verb refuses the same hostile bodies the
same way (``limits.py``): past 16 MiB a 413; nested past ``MAX_DEPTH`` a 400; YAML whose aliases
expand past 16 MiB, or refer to the node that holds them, a 400. kube-apiserver answers a body it
will not decode with 400 ``BadRequest`` (its YAML decoder refuses "excessive aliasing").

YAML is composed into PyYAML's node graph first, with the nesting counted as it goes; aliases are
then measured on the graph (each node once), and only a document that passes is constructed, then
normalised to what JSON can hold. JSON is tried first for every body: ``kubectl`` sends JSON, even
for ``application/apply-patch+yaml``, and orjson is fast.
"""

from __future__ import annotations

from typing import Any

import orjson
import yaml
from aiohttp import web

from api_server.errors import BadRequest, RequestEntityTooLarge
from api_server.limits import MAX_BODY_BYTES, MAX_DEPTH, TooDeep, check_depth
from api_server.patch import APPLY_PATCH
from api_server.protobuf import PROTOBUF, decode_object

__all__ = ["decode_body", "decode_patch", "read_body"]


async def read_body(request: web.Request) -> bytes:
    """The raw body, or a 413 ``Status`` past ``MAX_BODY_BYTES`` (aiohttp's own 413 is plain text)."""
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise RequestEntityTooLarge(f"Request entity too large: limit is {MAX_BODY_BYTES}") from exc


def decode_body(raw: bytes, content_type: str) -> Any:
    """An object body (create, update, delete options): protobuf, JSON, or YAML unless sent as JSON."""
    media_type = content_type.split(";", maxsplit=1)[0].strip()
    if media_type == PROTOBUF:
        return decode_object(raw)
    try:
        return _json(raw)
    except orjson.JSONDecodeError as exc:
        if media_type == "application/json":
            raise BadRequest(f"the body is not valid JSON: {exc}") from exc
    return _yaml(raw)


def decode_patch(raw: bytes, content_type: str) -> Any:
    """A patch body: JSON, or for server-side apply also YAML."""
    try:
        return _json(raw)
    except orjson.JSONDecodeError as exc:
        if content_type != APPLY_PATCH:
            raise BadRequest(f"error decoding patch: {exc}") from exc
    return _yaml(raw)


def _json(raw: bytes) -> Any:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc) or "ecursion" in str(exc):
            raise TooDeep from exc
        raise
    check_depth(value, raw=raw)
    return value


def _yaml(raw: bytes) -> Any:
    loader = _LimitedLoader(raw)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node)
        value = loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise BadRequest(f"the body is neither JSON nor YAML: {exc}") from exc
    finally:
        loader.dispose()
    try:
        # what sigs.k8s.io/yaml does too: non-string keys and timestamps become strings
        return orjson.loads(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS))
    except orjson.JSONEncodeError as exc:
        raise BadRequest(f"the YAML body holds a value JSON cannot: {exc}") from exc


class _LimitedLoader(yaml.SafeLoader):
    """PyYAML's safe loader that stops composing past ``MAX_DEPTH`` levels of collections.

    PyYAML's composer recurses once per level (two frames), so a deep document would otherwise end
    in a ``RecursionError`` before anything could measure it. Its parser and scanner do not recurse.
    """

    def __init__(self, stream: bytes) -> None:
        super().__init__(stream)
        self._levels = 0

    def compose_sequence_node(self, anchor: Any) -> yaml.SequenceNode:
        self._enter()
        try:
            return super().compose_sequence_node(anchor)
        finally:
            self._levels -= 1

    def compose_mapping_node(self, anchor: Any) -> yaml.MappingNode:
        self._enter()
        try:
            return super().compose_mapping_node(anchor)
        finally:
            self._levels -= 1

    def _enter(self) -> None:
        self._levels += 1
        if self._levels > MAX_DEPTH:
            raise TooDeep


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check_expansion(root: yaml.Node) -> None:
    """Refuse a document whose aliases make it too big, too deep, or contain themselves.

    Each node is measured once (its size as JSON, roughly, and its depth, with every alias
    expanded), bottom-up and without recursion, so a bomb costs as much as its graph, not as much
    as what it expands to.
    """
    measured: dict[int, tuple[int, int]] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_measured = stack.pop()
        key = id(node)
        children = _children(node)
        if children_measured:
            open_nodes.discard(key)
            sizes = [measured[id(child)] for child in children]
            size = 2 + sum(s + 1 for s, _ in sizes)
            depth = 1 + max((d for _, d in sizes), default=0)
            if size > MAX_BODY_BYTES:
                raise BadRequest(
                    f"the YAML body expands through its aliases to more than {MAX_BODY_BYTES // 2**20} "
                    "MiB, the request size limit"
                )
            if depth > MAX_DEPTH:
                raise TooDeep
            measured[key] = (size, depth)
        elif key not in measured:
            if isinstance(node, yaml.ScalarNode):
                measured[key] = (len(node.value) + 2, 0)
                continue
            open_nodes.add(key)
            stack.append((node, True))
            for child in children:
                if id(child) in open_nodes:
                    raise BadRequest("a YAML alias in the request body refers to itself (a node inside it)")
                if id(child) not in measured:
                    stack.append((child, False))
