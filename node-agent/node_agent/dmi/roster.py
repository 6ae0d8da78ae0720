"""The DMI mappers a node agent knows, published as a file for ``edgetwin mapper list``.

``edgetwin mapper list`` runs as its own process, and DMI mappers talk to the agent over Unix
sockets, so both run on the gateway: the agent keeps ``DATA_DIR/dmi/mappers.json`` (its node, its
DMI socket, its pid, and per mapper: name, protocol, socket, state, devices), rewritten atomically
on every change and marked stopped when the agent stops. A reader that finds the agent's pid gone
(a ``kill -9``) shows the mappers' states as unknown rather than believing a dead agent.

No gRPC here: the command line imports this module without loading grpc.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

__all__ = ["ROSTER_FILE", "MapperRecord", "Roster", "read_roster", "write_roster"]

#: Where a node agent's data directory holds its roster.
ROSTER_FILE = Path("dmi") / "mappers.json"

#: ``registered``: waiting for the mapper to serve its socket; ``online``: it serves it;
#: ``dead``: it stopped serving it (its devices are ``unknown``).
MapperState = Literal["registered", "online", "dead"]


@dataclass(frozen=True)
class MapperRecord:
    name: str
    protocol: str
    socket: str
    state: MapperState
    version: str = ""
    devices: int = 0
    #: Seconds since the epoch of the last registration.
    registered: float = 0.0


@dataclass(frozen=True)
class Roster:
    node: str
    dmi_socket: str
    pid: int
    #: ``False`` once the agent stopped (or, when read, if its process is gone).
    running: bool
    mappers: tuple[MapperRecord, ...] = field(default_factory=tuple)
    updated: float = 0.0


def write_roster(data_dir: Path, roster: Roster) -> None:
    """Replace the roster file atomically (a reader never sees half of it)."""
    path = data_dir / ROSTER_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    body = asdict(roster) | {"updated": time.time()}
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(body, indent=1))
    temporary.replace(path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    return True


def read_roster(data_dir: Path) -> Roster | None:
    """The roster of the agent using ``data_dir``; ``None`` if it has none or it cannot be read."""
    try:
        body = json.loads((data_dir / ROSTER_FILE).read_text())
        mappers = tuple(
            MapperRecord(
                name=str(m["name"]),
                protocol=str(m["protocol"]),
                socket=str(m["socket"]),
                state=m["state"],
                version=str(m.get("version", "")),
                devices=int(m.get("devices", 0)),
                registered=float(m.get("registered", 0.0)),
            )
            for m in body.get("mappers", [])
        )
        pid = int(body["pid"])
        return Roster(
            node=str(body["node"]),
            dmi_socket=str(body["dmi_socket"]),
            pid=pid,
            running=bool(body.get("running")) and _alive(pid),
            mappers=mappers,
            updated=float(body.get("updated", 0.0)),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def find_rosters(data_dirs: Iterable[Path]) -> list[tuple[Path, Roster]]:
    """The rosters found in these data directories and in their ``nodes/*`` folders."""
    found = []
    for data_dir in data_dirs:
        candidates = [data_dir]
        with contextlib.suppress(OSError):
            candidates += sorted(p for p in (data_dir / "nodes").iterdir() if p.is_dir())
        for candidate in candidates:
            roster = read_roster(candidate)
            if roster is not None:
                found.append((candidate, roster))
    return found
