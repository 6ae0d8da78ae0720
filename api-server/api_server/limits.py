"""How much a request may make the server hold: body size, nesting depth, JSON patch work.

A body is limited on the wire, but a small body can still become a huge or deep object once
decoded (YAML aliases) or applied (JSON patch ``copy``). These limits bound what it becomes, in one
place, so that every verb checks the same ones:

- ``MAX_BODY_BYTES`` (16 MiB): the body on the wire (413 past it), and also what YAML aliases may
  expand it to and what JSON patch copies may add to an object;
- ``MAX_DEPTH`` (100 levels of objects and lists): the server's own code (copying, patching,
  schema validation, orjson's 255-level serialiser) recurses per level, so a deeper body would end
  in a ``RecursionError``. kube-apiserver allows 10,000; no Kubernetes object comes near 100;
- ``MAX_JSON_PATCH_OPERATIONS`` (10,000): as kube-apiserver.
"""

from __future__ import annotations

from typing import Any

from api_server.errors import BadRequest

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_DEPTH",
    "MAX_JSON_PATCH_OPERATIONS",
    "TooDeep",
    "check_depth",
    "depth_of",
]

MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 100
MAX_JSON_PATCH_OPERATIONS = 10_000


class TooDeep(BadRequest):
    """A body (or what a patch makes of an object) nested more than ``MAX_DEPTH`` levels."""

    def __init__(self) -> None:
        super().__init__(f"the request body is nested more than {MAX_DEPTH} levels deep")


def depth_of(value: Any, *, stop_above: int = MAX_DEPTH) -> int:
    """Levels of objects and lists in ``value`` (0 for a scalar), counted without recursion.

    Counting stops as soon as it passes ``stop_above``: the answer is then ``stop_above + 1``.
    """
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if level > deepest:
            deepest = level
            if deepest > stop_above:
                return deepest
        stack.extend((child, level + 1) for child in children if isinstance(child, dict | list))
    return deepest


def check_depth(value: Any, *, raw: bytes | None = None, above: int = 0) -> None:
    """Refuse ``value`` (placed ``above`` levels down) if it would pass ``MAX_DEPTH``.

    With the ``raw`` JSON it came from, a body with fewer brackets than the limit is let through
    without walking it (the common case, at the cost of two ``bytes.count``).
    """
    if raw is not None and above == 0 and raw.count(b"{") + raw.count(b"[") <= MAX_DEPTH:
        return
    if above + depth_of(value, stop_above=MAX_DEPTH - above) > MAX_DEPTH:
        raise TooDeep
