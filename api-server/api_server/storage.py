"""Objects and their change history, in memory for reads and in sqlite for restarts.

One global ``resourceVersion`` counter orders every write, as etcd's revision does; it is persisted,
so it only ever grows across restarts. Each write is one sqlite transaction (WAL, synchronous=NORMAL:
a process crash loses nothing acknowledged, a power cut may lose the last writes). The last
``history`` changes are kept (in memory and on disk) so that a watcher can resume from a
resourceVersion, also after a restart; older ones are compacted and a watch from before them gets
``410 Gone``.
"""

from __future__ import annotations

import logging
import sqlite3
from collections import deque
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from api_server.errors import Gone

__all__ = ["Change", "Store"]

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    rkey TEXT NOT NULL, ns TEXT NOT NULL, name TEXT NOT NULL, rv INTEGER NOT NULL, body BLOB NOT NULL,
    PRIMARY KEY (rkey, ns, name)
);
CREATE TABLE IF NOT EXISTS changes (
    rv INTEGER PRIMARY KEY, type TEXT NOT NULL, rkey TEXT NOT NULL, body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

Object = dict[str, Any]


@dataclass
class Change:
    """One write: ``ADDED``, ``MODIFIED`` or ``DELETED`` with the object as it is after it."""

    rv: int
    type: str
    rkey: str
    obj: Object
    _json: bytes | None = field(default=None, repr=False)
    _forms: dict[Hashable, bytes] | None = field(default=None, repr=False)

    @property
    def namespace(self) -> str:
        return str(self.obj.get("metadata", {}).get("namespace", ""))

    def json(self) -> bytes:
        """The object serialised once, shared by every watcher (and stored as such)."""
        if self._json is None:
            self._json = orjson.dumps(self.obj)
        return self._json

    @property
    def size(self) -> int:
        """Bytes of the object as JSON: what a watcher that has not sent it yet holds on to."""
        return len(self.json())

    def form(self, key: Hashable, make: Callable[[], bytes]) -> bytes:
        """Another encoding of the change (a Table, another API version), made once and shared."""
        if self._forms is None:
            self._forms = {}
        encoded = self._forms.get(key)
        if encoded is None:
            encoded = self._forms[key] = make()
        return encoded


def copy_object(obj: Object) -> Object:
    result: Object = orjson.loads(orjson.dumps(obj))
    return result


class Store:
    """All objects of all resources, keyed by resource key, namespace and name."""

    def __init__(self, path: Path, *, history: int = 20_000) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._history = history
        self._objects: dict[str, dict[tuple[str, str], Object]] = {}
        self._changes: deque[Change] = deque()
        self._listeners: list[Callable[[Change], None]] = []
        self.rv = self._meta("rv")
        self.compacted_rv = self._meta("compacted_rv")
        self._writes_since_compaction = 0
        self._load()

    def _meta(self, key: str) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 0

    def _load(self) -> None:
        count = 0
        for rkey, ns, name, body in self._db.execute("SELECT rkey, ns, name, body FROM objects"):
            self._objects.setdefault(rkey, {})[(ns, name)] = orjson.loads(body)
            count += 1
        for rv, type_, rkey, body in self._db.execute("SELECT rv, type, rkey, body FROM changes ORDER BY rv"):
            self._changes.append(Change(rv, type_, rkey, orjson.loads(body), body))
        log.info("loaded %d objects, resourceVersion %d, history from %d", count, self.rv, self.compacted_rv)

    def close(self) -> None:
        self._db.close()

    def subscribe(self, listener: Callable[[Change], None]) -> None:
        self._listeners.append(listener)

    # -- reads -------------------------------------------------------------------------------

    def get(self, rkey: str, namespace: str, name: str) -> Object | None:
        """The stored object itself: callers must copy before changing it."""
        return self._objects.get(rkey, {}).get((namespace, name))

    def items(self, rkey: str, namespace: str | None = None) -> Iterator[Object]:
        """Objects of a resource (in one namespace or all), ordered by namespace and name."""
        objects = self._objects.get(rkey, {})
        for key in sorted(objects):
            if namespace is None or key[0] == namespace:
                yield objects[key]

    def count(self, rkey: str) -> int:
        return len(self._objects.get(rkey, {}))

    def changes_since(self, rv: int) -> list[Change]:
        """Every change after ``rv``; ``Gone`` if some of them were compacted away."""
        if rv < self.compacted_rv:
            raise Gone(f"too old resource version: {rv} ({self.compacted_rv})")
        if rv >= self.rv:
            return []
        result = [c for c in reversed(self._changes) if c.rv > rv]
        result.reverse()
        return result

    # -- writes ------------------------------------------------------------------------------

    def next_rv(self) -> int:
        return self.rv + 1

    def write(self, rkey: str, obj: Object, change_type: str) -> Change:
        """Store (or, for ``DELETED``, remove) ``obj`` under a new resourceVersion."""
        meta = obj["metadata"]
        ns = str(meta.get("namespace", ""))
        name = str(meta["name"])
        self.rv += 1
        meta["resourceVersion"] = str(self.rv)
        body = orjson.dumps(obj)
        change = Change(self.rv, change_type, rkey, obj, body)
        db = self._db
        db.execute("BEGIN")
        try:
            if change_type == "DELETED":
                db.execute("DELETE FROM objects WHERE rkey = ? AND ns = ? AND name = ?", (rkey, ns, name))
            else:
                db.execute(
                    "INSERT OR REPLACE INTO objects (rkey, ns, name, rv, body) VALUES (?, ?, ?, ?, ?)",
                    (rkey, ns, name, self.rv, body),
                )
            db.execute(
                "INSERT INTO changes (rv, type, rkey, body) VALUES (?, ?, ?, ?)",
                (self.rv, change_type, rkey, body),
            )
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('rv', ?)", (self.rv,))
            db.execute("COMMIT")
        except sqlite3.Error:
            db.execute("ROLLBACK")
            self.rv -= 1
            raise
        if change_type == "DELETED":
            self._objects.get(rkey, {}).pop((ns, name), None)
        else:
            self._objects.setdefault(rkey, {})[(ns, name)] = obj
        self._changes.append(change)
        self._writes_since_compaction += 1
        if self._writes_since_compaction >= max(1, self._history // 10):
            self._compact()
        for listener in self._listeners:
            listener(change)
        return change

    def _compact(self) -> None:
        self._writes_since_compaction = 0
        excess = len(self._changes) - self._history
        if excess <= 0:
            return
        for _ in range(excess):
            self.compacted_rv = self._changes.popleft().rv
        self._db.execute("BEGIN")
        self._db.execute("DELETE FROM changes WHERE rv <= ?", (self.compacted_rv,))
        self._db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('compacted_rv', ?)", (self.compacted_rv,)
        )
        self._db.execute("COMMIT")
