"""The pods bound to this node, kept on the gateway's disk so that they run on without the cloud.

One JSON file per pod (``<data dir>/pods/specs/<namespace>_<name>.json``: the ``BoundPod`` with its
ConfigMaps and Secrets, readable by the agent's user only). ``put`` returns once the file is
durable: written to a temporary file, fsynced, renamed over the old one and the folder fsynced,
so a power cut leaves the old version or the new one, never half of either. A file that cannot
be read is moved aside (``….corrupt``) and logged, never silently dropped or overwritten.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from pydantic import ValidationError

from node_agent.pods.spec import BoundPod

__all__ = ["PodStore"]

log = logging.getLogger(__name__)


class PodStore:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, key: str) -> Path:
        namespace, name = key.split("/", 1)
        return self.folder / f"{namespace}_{name}.json"

    def _write(self, key: str, data: bytes) -> None:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self._path(key)
        temporary = path.with_suffix(".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(descriptor, data)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        temporary.replace(path)
        self._sync_folder()

    def _sync_folder(self) -> None:
        descriptor = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    def _remove(self, key: str) -> None:
        path = self._path(key)
        if path.exists():
            path.unlink()
            self._sync_folder()

    async def put(self, bound: BoundPod) -> None:
        """Store ``bound`` durably (returns after the data is on disk)."""
        data = bound.model_dump_json(by_alias=True, exclude_none=True).encode()
        await asyncio.to_thread(self._write, bound.pod.key, data)

    async def remove(self, key: str) -> None:
        await asyncio.to_thread(self._remove, key)

    def load(self) -> list[BoundPod]:
        """Every stored pod; unreadable files are moved aside and logged."""
        found: list[BoundPod] = []
        if not self.folder.is_dir():
            return found
        for path in sorted(self.folder.glob("*.json")):
            try:
                found.append(BoundPod.model_validate_json(path.read_bytes()))
            except (OSError, ValidationError, ValueError) as exc:
                aside = path.with_suffix(".corrupt")
                log.error(  # noqa: TRY400 - the reason is in the message; no traceback wanted
                    "pod file %s cannot be read (%s); moved aside to %s", path, exc, aside.name
                )
                path.replace(aside)
        for leftover in self.folder.glob("*.tmp"):
            leftover.unlink()
        return found
