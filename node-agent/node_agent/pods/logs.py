"""Container logs on the gateway: one file per container instance, bounded, read like ``kubectl logs``.

Both runtimes leave logs in the CRI format the kubelet uses (``TIMESTAMP STREAM F|P TEXT``; ``P``
marks a line cut in parts): podman's conmon writes it (``--log-driver k8s-file``), and
``LogWriter`` writes it for the ``process`` runtime. Each instance of a container (each restart)
gets ``<pod folder>/logs/<container>/<restart count>.log``; the current and the previous instance
are kept (``kubectl logs --previous``), older ones removed. A file that outgrows its bound is
rotated once to ``….log.1`` by ``LogWriter`` (podman's conmon truncates it instead).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

from node_agent.pods._inotify import FolderWatch

__all__ = ["ContainerLogs", "LogWriter", "read_log"]

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
# A line longer than this is written in parts ("P") rather than held in memory.
_MAX_LINE = 16 * 1024


def _stamp() -> bytes:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000+00:00").encode()


class ContainerLogs:
    """Where one pod's container logs live, instance by instance."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def folder_of(self, container: str) -> Path:
        return self.folder / container

    def path(self, container: str, instance: int) -> Path:
        return self.folder / container / f"{instance}.log"

    def instances(self, container: str) -> list[int]:
        """The instances (restart counts) with a log, oldest first."""
        found = []
        with contextlib.suppress(FileNotFoundError):
            for entry in self.folder_of(container).iterdir():
                stem = entry.name.removesuffix(".log")
                if entry.name.endswith(".log") and stem.isdigit():
                    found.append(int(stem))
        return sorted(found)

    def new_instance(self, container: str, instance: int) -> Path:
        """The log path of a new instance; every instance older than the previous one is removed."""
        folder = self.folder_of(container)
        folder.mkdir(parents=True, exist_ok=True)
        for old in self.instances(container):
            if old < instance - 1 or old == instance:
                for suffix in (".log", ".log.1"):
                    (folder / f"{old}{suffix}").unlink(missing_ok=True)
        return self.path(container, instance)


class LogWriter:
    """Writes a process's stdout/stderr chunks as CRI log lines, rotating once past ``max_bytes``."""

    def __init__(self, path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._file = path.open("ab", buffering=0)
        self._size = self._file.tell()
        self._partial: dict[str, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}

    def write(self, stream: str, chunk: bytes) -> None:
        pending = self._partial[stream]
        pending += chunk
        lines = []
        while (cut := pending.find(b"\n")) >= 0:
            lines.append(b"%s %s F %s\n" % (_stamp(), stream.encode(), bytes(pending[:cut])))
            del pending[: cut + 1]
        while len(pending) >= _MAX_LINE:
            lines.append(b"%s %s P %s\n" % (_stamp(), stream.encode(), bytes(pending[:_MAX_LINE])))
            del pending[:_MAX_LINE]
        if lines:
            self._append(b"".join(lines))

    def close(self) -> None:
        """Flush what is left of unterminated lines (as partial lines, like conmon) and close."""
        for stream, pending in self._partial.items():
            if pending:
                self._append(b"%s %s P %s\n" % (_stamp(), stream.encode(), bytes(pending)))
                pending.clear()
        self._file.close()

    def _append(self, data: bytes) -> None:
        if self._size + len(data) > self.max_bytes and self._size > 0:
            self._file.close()
            self.path.replace(self.path.with_name(self.path.name + ".1"))
            self._file = self.path.open("ab", buffering=0)
            self._size = 0
        self._file.write(data)
        self._size += len(data)


def _parse(raw: bytes, partial: dict[bytes, bytes], *, timestamps: bool) -> list[bytes]:
    """Whole log lines from CRI records; partial records wait in ``partial``, per stream."""
    out: list[bytes] = []
    for record in raw.split(b"\n"):
        parts = record.split(b" ", 3)
        if len(parts) < 3:
            continue
        stamp, stream, tag = parts[0], parts[1], parts[2]
        text = parts[3] if len(parts) == 4 else b""
        joined = partial.pop(stream, b"") + text
        if tag == b"P":
            partial[stream] = joined
            continue
        out.append((stamp + b" " if timestamps else b"") + joined + b"\n")
    return out


def _read_from(path: Path, offset: int, inode: int | None) -> tuple[bytes, int, int | None]:
    """Bytes of whole records past ``offset``; starts over when the file was replaced (rotation)."""
    try:
        with path.open("rb") as handle:
            stat = os.fstat(handle.fileno())
            if inode is not None and (stat.st_ino != inode or stat.st_size < offset):
                offset = 0
            handle.seek(offset)
            data = handle.read()
    except FileNotFoundError:
        return b"", offset, inode
    end = data.rfind(b"\n") + 1
    return data[:end], offset + end, stat.st_ino


async def read_log(
    path: Path,
    *,
    tail: int | None = None,
    timestamps: bool = False,
    follow: bool = False,
    ended: asyncio.Event | None = None,
) -> AsyncIterator[bytes]:
    """The lines of one instance's log; with ``follow``, new lines until ``ended`` is set."""
    rotated = path.with_name(path.name + ".1")
    old = rotated.read_bytes() if rotated.exists() else b""
    data, offset, inode = await asyncio.to_thread(_read_from, path, 0, None)
    partial: dict[bytes, bytes] = {}
    lines = _parse(old + data, partial, timestamps=timestamps)
    if tail is not None:
        lines = lines[-tail:] if tail > 0 else []
    for line in lines:
        yield line
    if not follow:
        for text in partial.values():
            yield text
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    watch = FolderWatch(path.parent)
    try:
        while True:
            finished = ended is None or ended.is_set()
            data, offset, inode = _read_from(path, offset, inode)
            if data:
                for line in _parse(data, partial, timestamps=timestamps):
                    yield line
                continue
            if finished:
                for text in partial.values():
                    yield text
                return
            waits: list[asyncio.Future[object]] = [asyncio.ensure_future(watch.changed())]
            if ended is not None:
                waits.append(asyncio.ensure_future(ended.wait()))
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiting in waits:
                    waiting.cancel()
    finally:
        watch.close()
