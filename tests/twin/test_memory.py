"""Giving the allocator's free memory back to the system."""

from __future__ import annotations

import sys

from twin.memory import release_free_memory


def test_freed_memory_is_given_back_on_linux_and_asking_twice_is_harmless() -> None:
    garbage = [bytearray(200) for _ in range(50_000)]
    del garbage
    assert release_free_memory() is sys.platform.startswith("linux")
    assert release_free_memory() is sys.platform.startswith("linux")
