"""KubeEdge's DMI (Device Management Interface) in the node agent: mapper-framework mappers on edgetwin.

Since KubeEdge 1.15 mappers built with KubeEdge's mapper-framework (Go) talk to the edge over DMI,
gRPC on Unix sockets, instead of the MQTT twin topics. ``edgetwin node NAME --dmi-socket PATH``
serves it (``node_agent.dmi.server``), so such mappers run against edgetwin without a line changed;
what they report goes through the same twin rules and MQTT events as an MQTT mapper's reports.

gRPC adds ~20 MB of RSS to the agent (40 -> 59 MB measured), so nothing here imports it until a
DMI server is asked for (``dmi_server``); ``read_roster`` (for ``edgetwin mapper list``) never does.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from node_agent.dmi.roster import MapperRecord, Roster, find_rosters, read_roster
from twin.errors import PermanentError
from twin.service import TwinService

if TYPE_CHECKING:
    from node_agent.dmi.server import DmiServer

__all__ = ["DmiUnavailable", "MapperRecord", "Roster", "dmi_server", "find_rosters", "read_roster"]

# grpc's C core logs connection events (a mapper going away) at INFO on stderr; the agent logs them
# itself. Set before anything here imports grpc.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")


class DmiUnavailable(PermanentError):
    """Serving DMI needs grpcio and protobuf, which are not installed."""


def dmi_server(service: TwinService, socket: Path, *, data_dir: Path | None = None) -> DmiServer:
    """A DMI server for ``service`` on ``socket`` (imports grpc); ``DmiUnavailable`` without it."""
    try:
        from node_agent.dmi.server import DmiServer, DmiSettings
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] not in ("grpc", "google"):
            raise
        raise DmiUnavailable(
            "serving DMI (--dmi-socket) needs grpcio and protobuf: pip install 'edgetwin[dmi]'"
        ) from exc
    return DmiServer(service, DmiSettings(socket=socket), data_dir=data_dir)
