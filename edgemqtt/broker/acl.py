"""Who may publish and read which topics: an ACL file in mosquitto's format, so one file serves both brokers.

The format (mosquitto.conf(5), ``acl_file``)::

    # topic lines before any 'user' line apply to clients without a user name
    topic read public/#
    user alice                      # the topic lines below apply to alice
    topic readwrite $hw/#
    pattern readwrite nodes/%u/#    # every client; %u its user name, %c its client id
    topic deny nodes/alice/secret/# # deny wins over any grant

Access is what mosquitto 2.0 does with it, checked against a real mosquitto in the tests: a
PUBLISH to a topic the client may not write is acknowledged and dropped; a message is delivered
only to subscribers that may read its topic. One difference, on purpose: mosquitto 2.0 grants
every SUBSCRIBE and then delivers nothing outside the ACL, while this broker answers SUBACK 0x80
for a filter that no rule lets the client read any topic of, so that the client learns of the
mistake at once. A filter that overlaps a grant (``#`` for alice) is granted and filtered.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from edgemqtt.wire import topic_matches, valid_filter

__all__ = ["Acl"]

log = logging.getLogger("edgemqtt.broker")

READ, WRITE = 1, 2
_ACCESS = {"read": READ, "write": WRITE, "readwrite": READ | WRITE, "deny": 0}


@dataclass(frozen=True)
class _Rule:
    access: int  # READ | WRITE, or 0 for deny
    topic_filter: str
    pattern: bool = False  # %u / %c substituted per client

    def filter_for(self, username: str | None, client_id: str) -> str | None:
        if not self.pattern:
            return self.topic_filter
        if "%u" in self.topic_filter and username is None:
            return None  # as mosquitto: a %u pattern does not apply to anonymous clients
        text = self.topic_filter.replace("%c", client_id)
        return text.replace("%u", username) if username is not None else text


class Acl:
    """The rules of one ACL file; ``may_write``, ``may_read`` and ``may_subscribe`` answer per client."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._anonymous: list[_Rule] = []
        self._users: dict[str, list[_Rule]] = {}
        self._patterns: list[_Rule] = []
        self.load()

    def load(self) -> None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read ACL file {self.path}: {exc}") from None
        anonymous: list[_Rule] = []
        users: dict[str, list[_Rule]] = {}
        patterns: list[_Rule] = []
        current = anonymous
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            keyword, _, rest = line.partition(" ")
            rest = rest.strip()
            if keyword == "user" and rest:
                current = users.setdefault(rest, [])
                continue
            if keyword in ("topic", "pattern") and rest:
                access_word, _, topic_filter = rest.partition(" ")
                if access_word in _ACCESS and topic_filter.strip():
                    access, topic_filter = _ACCESS[access_word], topic_filter.strip()
                else:  # "topic FILTER" alone means readwrite, as in mosquitto
                    access, topic_filter = READ | WRITE, rest
                if valid_filter(topic_filter):
                    rule = _Rule(access, topic_filter, pattern=keyword == "pattern")
                    (patterns if keyword == "pattern" else current).append(rule)
                    continue
            raise ValueError(f"ACL file {self.path} line {number}: cannot read {line[:80]!r}")
        self._anonymous, self._users, self._patterns = anonymous, users, patterns

    def _rules(self, username: str | None) -> list[_Rule]:
        own = self._anonymous if username is None else self._users.get(username, [])
        return own + self._patterns

    def _allowed(self, username: str | None, client_id: str, topic: str, access: int) -> bool:
        granted = False
        for rule in self._rules(username):
            topic_filter = rule.filter_for(username, client_id)
            if topic_filter is None or not topic_matches(topic_filter, topic):
                continue
            if rule.access == 0:
                return False
            granted = granted or bool(rule.access & access)
        return granted

    def may_write(self, username: str | None, client_id: str, topic: str) -> bool:
        return self._allowed(username, client_id, topic, WRITE)

    def may_read(self, username: str | None, client_id: str, topic: str) -> bool:
        return self._allowed(username, client_id, topic, READ)

    def may_subscribe(self, username: str | None, client_id: str, topic_filter: str) -> bool:
        """Whether some topic that ``topic_filter`` matches could be read (see the module docstring)."""
        for rule in self._rules(username):
            granted = rule.filter_for(username, client_id)
            if granted is not None and rule.access & READ and filters_overlap(granted, topic_filter):
                return True
        return False


def filters_overlap(first: str, second: str) -> bool:
    """Whether some topic name matches both filters (``$`` topics need a literal first level)."""
    a, b = first.split("/"), second.split("/")
    if (a[0].startswith("$") and b[0] in ("+", "#")) or (b[0].startswith("$") and a[0] in ("+", "#")):
        return False
    for index in range(max(len(a), len(b))):
        x = a[index] if index < len(a) else None
        y = b[index] if index < len(b) else None
        if x == "#" or y == "#":
            return True
        if x is None or y is None:
            return False
        if "+" not in (x, y) and x != y:
            return False
    return True
