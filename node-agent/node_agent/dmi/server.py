"""KubeEdge's DMI on a Unix socket for one node: mappers built with KubeEdge's mapper-framework run unchanged.

``DmiServer.run`` serves ``DeviceManagerService`` (``node_agent.dmi.manager``) on the socket, feeds
the mappers' reports into the twin (``node_agent.dmi.reports``) and keeps one ``MapperLink`` per
registered protocol, which sends the mapper the changes of its devices and watches that it lives
(``node_agent.dmi.links``). One mapper serves a protocol, as in KubeEdge: a mapper that registers
the protocol again (a restart) replaces the previous link.

Registered mappers are kept in the roster file (``node_agent.dmi.roster``), for ``edgetwin mapper
list`` and for the agent itself: after a restart of the agent, mappers that registered before are
watched again, as KubeEdge's edge reloads them from its database, since a running framework mapper
does not register twice. They are assumed to hold the devices as they are now.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import grpc

from node_agent.dmi.convert import device_message, model_message
from node_agent.dmi.links import MapperInfo, MapperLink
from node_agent.dmi.manager import DeviceManager
from node_agent.dmi.reports import ReportQueue
from node_agent.dmi.roster import Roster, read_roster, write_roster
from node_agent.dmi.sockets import (
    DEFAULT_SOCKET,
    SocketUnusable,
    grpc_target,
    prepare_socket,
    remove_socket,
    resolve_socket,
)
from node_agent.dmi.v1beta1 import api_pb2 as pb
from node_agent.dmi.v1beta1 import manager_service_pb2_grpc
from twin.errors import PermanentError
from twin.observers import DefinitionsChange, TwinChange
from twin.service import TwinService

__all__ = ["DmiServer", "DmiSettings"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DmiSettings:
    #: The socket to serve (a directory means ``DIR/dmi.sock``, as KubeEdge's ``dmiSockPath``).
    socket: Path = DEFAULT_SOCKET
    #: Timeout of each call to a mapper (KubeEdge's: 10 s).
    call_timeout: float = 10.0
    #: How long a mapper may take to serve its own socket after registering before it counts as dead.
    start_grace: float = 30.0
    #: Pause before sending again what a mapper did not take because it did not answer.
    retry_delay: float = 1.0


class DmiServer:
    """``await server.run()`` serves until cancelled; ``ready`` is set while it serves."""

    def __init__(self, service: TwinService, settings: DmiSettings, *, data_dir: Path | None = None) -> None:
        self.service = service
        self.settings = settings
        self.socket = resolve_socket(settings.socket)
        self.data_dir = data_dir
        self.reports = ReportQueue(service)
        #: The registered mappers, by protocol.
        self.links: dict[str, MapperLink] = {}
        self.ready = asyncio.Event()
        #: Set whenever a mapper registers or changes state (for those who wait on it: tests).
        self.changed = asyncio.Event()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._group: asyncio.TaskGroup | None = None
        prepare_socket(self.socket)  # a socket that cannot be served stops the agent at start
        service.add_observer(self._on_twin_change)
        service.add_definitions_observer(self._on_definitions)

    @property
    def node(self) -> str:
        return self.service.node

    async def run(self) -> None:
        prepare_socket(self.socket)
        server = grpc.aio.server()
        manager_service_pb2_grpc.add_DeviceManagerServiceServicer_to_server(DeviceManager(self), server)
        try:
            server.add_insecure_port(grpc_target(self.socket))
        except RuntimeError as exc:
            raise SocketUnusable(f"cannot serve DMI on {self.socket}: {exc}") from exc
        await server.start()
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                group.create_task(self.reports.run(), name="DMI reports into the twin")
                self._restore()
                self._publish()
                self.ready.set()
                log.info("DMI: serving KubeEdge mapper-framework mappers on %s", self.socket)
                await asyncio.get_running_loop().create_future()  # until cancelled
        finally:
            self.ready.clear()
            self._group = None
            self._tasks.clear()
            await server.stop(grace=1.0)
            remove_socket(self.socket)
            self._publish(running=False)
            # Their tasks ended with the group: a new run() watches them again from the roster.
            self.links.clear()

    # -- mappers ------------------------------------------------------------------------------------

    def protocols_in_use(self) -> set[str]:
        used = {d.protocol_name for d in self.service.devices.values()}
        used |= {m.spec.protocol for m in self.service.models.values()}
        return used - {""}

    def register(self, info: MapperInfo, *, with_data: bool) -> tuple[list[pb.Device], list[pb.DeviceModel]]:
        """A mapper registers: its devices and their models (parallel lists, as KubeEdge sends them)."""
        devices, models, sent_devices, sent_models = self._snapshot(info.protocol)
        self._start(info, sent_devices, sent_models)
        log.info(
            "DMI mapper %s (%s, version %s) registered, serving %s: %d devices",
            info.name,
            info.protocol,
            info.version or "?",
            info.socket,
            len(devices),
        )
        return (devices, models) if with_data else ([], [])

    def _snapshot(
        self, protocol: str
    ) -> tuple[list[pb.Device], list[pb.DeviceModel], dict[str, bytes], dict[str, bytes]]:
        service = self.service
        devices, models = [], []
        sent_devices: dict[str, bytes] = {}
        sent_models: dict[str, bytes] = {}
        for device_id, device in sorted(service.devices.items()):
            model = service.models.get(device.model_key)
            if device.protocol_name != protocol or model is None:
                continue
            try:
                message = device_message(device, model, service.twins.get(device_id))
            except PermanentError as exc:
                log.error("DMI: device %s is not sent to its mapper: %s", device_id, exc)  # noqa: TRY400
                continue
            model_msg = model_message(model)
            devices.append(message)
            models.append(model_msg)
            sent_devices[device_id] = message.SerializeToString(deterministic=True)
            sent_models[model.key] = model_msg.SerializeToString(deterministic=True)
        return devices, models, sent_devices, sent_models

    def _start(self, info: MapperInfo, sent_devices: dict[str, bytes], sent_models: dict[str, bytes]) -> None:
        previous = self._tasks.pop(info.protocol, None)
        if previous is not None:
            previous.cancel()
        settings = self.settings
        link = MapperLink(
            info,
            self.service,
            self.reports,
            sent_devices=sent_devices,
            sent_models=sent_models,
            timeout=settings.call_timeout,
            start_grace=settings.start_grace,
            retry_delay=settings.retry_delay,
            on_state=lambda _: self._publish(),
        )
        self.links[info.protocol] = link
        if self._group is not None:
            self._tasks[info.protocol] = self._group.create_task(
                self._guard(link), name=f"DMI mapper {info.name} ({info.protocol})"
            )
        self._publish()

    async def _guard(self, link: MapperLink) -> None:
        # A bug in one link must not stop the DMI server for every other mapper.
        try:
            await link.run()
        except Exception:
            log.exception(
                "DMI mapper %s: its link failed; it is served again when it registers", link.info.name
            )

    def _restore(self) -> None:
        roster = read_roster(self.data_dir) if self.data_dir is not None else None
        for record in roster.mappers if roster is not None else ():
            if record.protocol in self.links:
                continue
            log.info(
                "DMI mapper %s (%s) registered before this agent started: watching %s",
                record.name,
                record.protocol,
                record.socket,
            )
            _, _, sent_devices, sent_models = self._snapshot(record.protocol)
            self._start(
                MapperInfo(record.name, record.protocol, record.socket, record.version),
                sent_devices,
                sent_models,
            )

    def _publish(self, *, running: bool = True) -> None:
        self.changed.set()
        if self.data_dir is None:
            return
        roster = Roster(
            node=self.node,
            dmi_socket=str(self.socket),
            pid=os.getpid(),
            running=running,
            mappers=tuple(link.record() for _, link in sorted(self.links.items())),
        )
        try:
            write_roster(self.data_dir, roster)
        except OSError as exc:
            log.warning("DMI: cannot write the list of registered mappers: %s", exc)

    # -- what changes -------------------------------------------------------------------------------

    def _on_twin_change(self, device_id: str, change: TwinChange) -> None:
        if not change.desired:
            return
        device = self.service.devices.get(device_id)
        link = self.links.get(device.protocol_name) if device is not None else None
        if link is not None:
            link.touch([device_id])

    def _on_definitions(self, change: DefinitionsChange) -> None:
        touched = [*change.changed, *change.removed]
        for protocol, link in self.links.items():
            # A device that moved to another protocol is removed from the mapper that had it.
            ids = [d.id for d in touched if d.protocol_name == protocol or d.id in link.sent_devices]
            link.touch(ids, models=True)
        if touched:
            self._publish()
