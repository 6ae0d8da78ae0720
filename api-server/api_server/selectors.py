"""Label and field selectors (``?labelSelector=app=x,tier!=db`` and ``?fieldSelector=spec.nodeName=n``).

Label selectors follow Kubernetes' grammar (``=``, ``==``, ``!=``, ``in``, ``notin``, ``key``,
``!key``). Field selectors take any dotted path into the object, which is more than the real server
allows per type and what ``kubectl describe`` (``involvedObject.uid``) and node agents
(``spec.nodeName``) need.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from api_server.errors import BadRequest

__all__ = ["Selector", "parse_field_selector", "parse_label_selector"]

Selector = Callable[[dict[str, Any]], bool]

_SET_RE = re.compile(r"^\s*(!?)\s*([A-Za-z0-9_./-]+)\s*(?:(notin|in)\s*\(([^)]*)\))?\s*$")


def _split_top(text: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def _match_all(tests: list[Selector]) -> Selector:
    return lambda obj: all(test(obj) for test in tests)


def _labels(obj: dict[str, Any]) -> dict[str, str]:
    labels = obj.get("metadata", {}).get("labels") or {}
    return labels if isinstance(labels, dict) else {}


def _label_requirement(text: str) -> Selector:
    for op in ("!=", "==", "="):
        if op in text and not re.search(r"\b(in|notin)\s*\(", text):
            key, _, value = text.partition(op)
            key, value = key.strip(), value.strip()
            if not key:
                break
            if op == "!=":
                return lambda obj: _labels(obj).get(key) != value
            return lambda obj: _labels(obj).get(key) == value
    match = _SET_RE.match(text)
    if not match:
        raise BadRequest(f"unable to parse requirement: {text!r}")
    negated, key, op, values_text = match.groups()
    if op:
        values = {v.strip() for v in values_text.split(",") if v.strip()}
        if op == "in":
            return lambda obj: _labels(obj).get(key) in values
        return lambda obj: _labels(obj).get(key) not in values
    if negated:
        return lambda obj: key not in _labels(obj)
    return lambda obj: key in _labels(obj)


def parse_label_selector(text: str | None) -> Selector | None:
    if not text or not text.strip():
        return None
    return _match_all([_label_requirement(part) for part in _split_top(text)])


def field_value(obj: dict[str, Any], path: str) -> str:
    """A field as the real server compares it: a string, ``""`` when absent."""
    current: Any = obj
    for part in path.split("."):
        if not isinstance(current, dict):
            return ""
        current = current.get(part)
    if current is None:
        return ""
    if isinstance(current, bool):
        return "true" if current else "false"
    return str(current)


def _field_requirement(text: str) -> Selector:
    for op in ("!=", "==", "="):
        if op in text:
            path, _, value = text.partition(op)
            path, value = path.strip(), value.strip()
            if not path:
                break
            if op == "!=":
                return lambda obj: field_value(obj, path) != value
            return lambda obj: field_value(obj, path) == value
    raise BadRequest(f'invalid selector: "{text}"; can\'t understand "{text}"')


def parse_field_selector(text: str | None) -> Selector | None:
    if not text or not text.strip():
        return None
    return _match_all([_field_requirement(part) for part in _split_top(text)])
