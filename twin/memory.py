"""Giving memory back to the system after large, short-lived allocations.

Reading a node's definitions (a thousand Devices: ~2 MB of JSON, a hundred thousand objects that
live for a moment), a cloud sync of as much, a membership answer, or a flush of a thousand twins'
reported values leaves the C allocator holding the freed memory for later use: 6-15 MB of a
node's resident size with a thousand devices (bench/sync.py). With glibc, ``lean_allocator``
keeps large blocks out of the heap for good (glibc raises its threshold for them after the first
large one is freed, and then keeps them), and ``release_free_memory`` hands back what the heap
holds free (~0.3 ms). With another C library (musl, macOS) both do nothing.

Python's own allocator (pymalloc) gives an arena (1 MB) back only once every object in it is
gone: objects kept for months, made while a large message's objects were alive, would keep those
arenas. So large messages are read and applied one device at a time (``twin.link.read_sync``,
``twin.registry``, ``twin.store``), never all of their objects alive at once.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import sys

__all__ = ["LARGE_BODY", "lean_allocator", "release_free_memory"]

log = logging.getLogger(__name__)


#: glibc's ``mallopt`` parameters, and the size above which a block is mapped on its own (its
#: default before glibc adjusts it): returned to the system as soon as it is freed.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_LARGE_BLOCK = 128 * 1024

#: A message this large (a membership answer of a few hundred devices) leaves the C allocator
#: holding about as much in freed blocks: worth a ``release_free_memory`` once it is handled.
LARGE_BODY = 256 * 1024


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")  # glibc's name: musl and others have none by it
        libc.malloc_trim  # noqa: B018 - glibc has it, musl does not
        libc.mallopt  # noqa: B018
    except (OSError, AttributeError):
        log.debug("not glibc: freed memory stays with the C allocator")
        return None
    return libc


def lean_allocator() -> bool:
    """Blocks over 128 KB mapped on their own and the heap trimmed past 128 KB free, for good
    (call once, at start); whether this C library can (glibc)."""
    libc = _glibc()
    if libc is None:
        return False
    return bool(
        libc.mallopt(_M_MMAP_THRESHOLD, _LARGE_BLOCK) and libc.mallopt(_M_TRIM_THRESHOLD, _LARGE_BLOCK)
    )


def release_free_memory() -> bool:
    """Return the allocator's free memory to the system; whether this C library can (glibc)."""
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True
