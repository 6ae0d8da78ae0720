"""Giving memory back to the system after a large, short-lived allocation.

Reading a node's definitions (a thousand Devices: ~2 MB of JSON, a hundred thousand objects that
live for a moment) leaves the C allocator holding the freed memory for later use: 6-15 MB of a
node's resident size with a thousand devices (bench/sync.py). glibc's ``malloc_trim`` hands it
back to the system; with another C library (musl, macOS) nothing is done.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import sys
from collections.abc import Callable

__all__ = ["release_free_memory"]

log = logging.getLogger(__name__)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        log.debug("no malloc_trim in this C library: freed memory stays with the allocator")
        return None
    return trim


def release_free_memory() -> bool:
    """Return the allocator's free memory to the system; whether this C library can (glibc)."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
