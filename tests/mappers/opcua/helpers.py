"""What the OPC UA end-to-end tests share: the twin's view of a value, and the real command line."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from tests.mappers.harness import Stack, until

EDGETWIN = Path(sys.executable).parent / "edgetwin"


def reported(stack: Stack, device_id: str, prop: str) -> str | None:
    """The reported value the twin holds now."""
    twin = stack.twin.twins.get(device_id)
    held = twin.properties.get(prop) if twin is not None else None
    return held.actual.value if held is not None and held.actual is not None else None


async def holds(stack: Stack, device_id: str, prop: str, value: str) -> None:
    """Wait until the twin holds ``value`` as reported (whichever report carried it)."""
    await until(lambda: reported(stack, device_id, prop) == value)


async def edgetwin(*args: str, expect: int = 0) -> str:
    """Run the ``edgetwin`` command; its output (stdout and stderr)."""
    proc = await asyncio.create_subprocess_exec(
        str(EDGETWIN), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == expect, out.decode()
    return out.decode()
