"""Giving the allocator's free memory back to the system."""

from __future__ import annotations

import sys

from twin.memory import lean_allocator, release_free_memory


def test_freed_memory_is_given_back_on_linux_and_asking_twice_is_harmless() -> None:
    garbage = [bytearray(200) for _ in range(50_000)]
    del garbage
    assert release_free_memory() is sys.platform.startswith("linux")
    assert release_free_memory() is sys.platform.startswith("linux")


def test_the_allocator_keeps_large_blocks_apart_on_linux() -> None:
    assert lean_allocator() is sys.platform.startswith("linux")
    block = bytearray(1024 * 1024)  # mapped on its own, and unmapped when freed
    del block
