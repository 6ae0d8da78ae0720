"""Waking up when a folder's files change (Linux inotify through ctypes), for ``logs -f``.

Following a log means waiting for the next write. The writer is either this process (the
``process`` runtime) or podman's conmon, so an event from the kernel is the one wake-up that works
for both without polling the file.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
from pathlib import Path

__all__ = ["FolderWatch"]

_IN_MODIFY = 0x002
_IN_CLOSE_WRITE = 0x008
_IN_MOVED_TO = 0x080
_IN_CREATE = 0x100
_IN_NONBLOCK = 0o4000
_IN_CLOEXEC = 0o2000000

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


class FolderWatch:
    """``await watch.changed()`` returns after any file in ``folder`` is written, created or replaced."""

    def __init__(self, folder: Path) -> None:
        fd = _libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self._fd: int = fd
        mask = _IN_MODIFY | _IN_CLOSE_WRITE | _IN_MOVED_TO | _IN_CREATE
        if _libc.inotify_add_watch(fd, os.fsencode(folder), mask) < 0:
            errno = ctypes.get_errno()
            os.close(fd)
            raise OSError(errno, f"cannot watch {folder}")
        self._ready = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(fd, self._ready.set)

    async def changed(self) -> None:
        await self._ready.wait()
        self._ready.clear()
        try:
            while os.read(self._fd, 4096):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1
