"""One writer task per key with something to write: the scheduling the status writers share.

A subclass keeps what waits per key in ``_pending`` and writes it in ``_flush(key)``, which runs
until nothing is left for that key and then removes itself from ``_tasks``. ``_schedule(key)`` starts
a writer unless one runs (a running writer takes what arrived meanwhile) or ``run`` has not started
(``run`` schedules every pending key when it does).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

__all__ = ["KeyedWriters"]


class KeyedWriters:
    #: The tasks' names: "{what} {key}".
    what = "status"

    def __init__(self) -> None:
        self._pending: Mapping[str, Any] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._group: asyncio.TaskGroup | None = None

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            self._group = group
            for key in list(self._pending):
                self._schedule(key)
            try:
                await asyncio.Event().wait()
            finally:
                self._group = None

    def _schedule(self, key: str) -> None:
        if key in self._tasks or self._group is None:
            return
        self._tasks[key] = self._group.create_task(self._flush(key), name=f"{self.what} {key}")

    async def _flush(self, key: str) -> None:
        raise NotImplementedError
