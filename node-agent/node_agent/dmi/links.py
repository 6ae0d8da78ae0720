"""One registered mapper seen from the agent: what it was sent, what changed since, whether it is alive.

After ``MapperRegister`` the agent knows the mapper's protocol and socket. ``MapperLink.run`` then
does two things until the mapper registers again (a new link replaces this one):

* **changes**: devices of its protocol that were added, changed (desired values included) or
  removed reach it as ``RegisterDevice``/``UpdateDevice``/``RemoveDevice``, their models first as
  ``CreateDeviceModel``/``UpdateDeviceModel`` and last ``RemoveDeviceModel``. Each call dials the
  socket afresh, as KubeEdge's edge does, with a timeout; nothing is sent twice (a device is sent
  again only when its message changed), and what could not be delivered because the mapper was not
  reachable is sent once it is. ``GetDevice`` is never called: the framework's handler panics.
* **liveness**: a gRPC channel to the mapper's socket is watched (no polling: the channel reports
  when its connection goes). A framework mapper serves its socket only after registering, so it
  gets ``start_grace`` seconds to do so; when it stops serving it, it is marked ``dead`` and its
  devices ``unknown``. A mapper that comes back on the same socket without registering is sent
  everything again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import grpc

from node_agent.dmi.convert import device_message, model_message
from node_agent.dmi.reports import ReportQueue
from node_agent.dmi.roster import MapperRecord, MapperState
from node_agent.dmi.sockets import grpc_target
from node_agent.dmi.v1beta1 import api_pb2 as pb
from node_agent.dmi.v1beta1 import mapper_service_pb2_grpc
from twin.errors import PermanentError
from twin.models import Device
from twin.service import TwinService
from twin.topics import split_device_id

__all__ = ["MapperInfo", "MapperLink"]

log = logging.getLogger(__name__)

# The liveness channel retries quickly, so that a mapper that starts serving is seen within ~2 s.
_WATCH_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
]
_UNREACHABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED}


@dataclass(frozen=True)
class MapperInfo:
    """What a mapper said about itself in ``MapperRegister``."""

    name: str
    protocol: str
    socket: str
    version: str = ""


class _Unreachable(Exception):
    """The mapper did not answer: try again once it serves its socket."""


class MapperLink:
    def __init__(
        self,
        info: MapperInfo,
        service: TwinService,
        reports: ReportQueue,
        *,
        sent_devices: dict[str, bytes],
        sent_models: dict[str, bytes],
        timeout: float = 10.0,
        start_grace: float = 30.0,
        retry_delay: float = 1.0,
        on_state: Callable[[MapperLink], None] = lambda _: None,
    ) -> None:
        self.info = info
        self.service = service
        self.reports = reports
        self.timeout = timeout
        self.start_grace = start_grace
        self.retry_delay = retry_delay
        self.on_state = on_state
        self.state: MapperState = "registered"
        self.registered = time.time()
        #: Serialized messages the mapper holds (what it was last sent and accepted).
        self.sent_devices = sent_devices
        self.sent_models = sent_models
        #: Calls made, by method name (what ``edgetwin`` told the mapper).
        self.calls: dict[str, int] = {}
        self._target = grpc_target(info.socket)
        # Device ids to look at, with the touch count when they were last touched (see _push).
        self._dirty: dict[str, int] = {}
        self._touches = 0
        self._models_dirty = False
        self._wakeup = asyncio.Event()
        self._online = asyncio.Event()

    # -- what the link serves -----------------------------------------------------------------------

    def device_ids(self) -> list[str]:
        return [i for i, d in self.service.devices.items() if d.protocol_name == self.info.protocol]

    def record(self) -> MapperRecord:
        info = self.info
        return MapperRecord(
            info.name,
            info.protocol,
            info.socket,
            self.state,
            info.version,
            len(self.device_ids()),
            self.registered,
        )

    def touch(self, device_ids: Iterable[str], *, models: bool = False) -> None:
        """Look again at these devices (and, with ``models``, at the models) and send what changed."""
        for device_id in device_ids:
            self._touches += 1
            self._dirty[device_id] = self._touches
        self._models_dirty = self._models_dirty or models
        self._wakeup.set()

    # -- running ------------------------------------------------------------------------------------

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._push(), name=f"DMI changes to {self.info.name}")
            group.create_task(self._watch(), name=f"DMI liveness of {self.info.name}")

    def _set_state(self, state: MapperState, why: str = "") -> None:
        if state == self.state:
            return
        previous, self.state = self.state, state
        if state == "online":
            self._online.set()
            if previous == "dead":
                log.info("DMI mapper %s (%s) serves %s again: sending it everything", *self._who())
                self.sent_devices.clear()
                self.sent_models.clear()
                self.touch(self.device_ids(), models=True)
            else:
                log.info("DMI mapper %s (%s) serves %s", *self._who())
        else:
            self._online.clear()
        if state == "dead":
            devices = self.device_ids()
            name, protocol, socket = self._who()
            log.error(
                "DMI mapper %s (%s) %s on %s: its %d devices are now unknown",
                name,
                protocol,
                why,
                socket,
                len(devices),
            )
            for device_id in devices:
                self.reports.report_state(device_id, "unknown")
        self.on_state(self)

    def _who(self) -> tuple[str, str, str]:
        return self.info.name, self.info.protocol, self.info.socket

    async def _watch(self) -> None:
        connectivity = grpc.ChannelConnectivity
        async with grpc.aio.insecure_channel(self._target, options=_WATCH_OPTIONS) as channel:
            try:
                await asyncio.wait_for(channel.channel_ready(), self.start_grace)
            except TimeoutError:
                self._set_state("dead", f"did not serve within {self.start_grace:g} s")
            while True:
                await channel.channel_ready()
                self._set_state("online")
                state = channel.get_state()
                while state not in (connectivity.TRANSIENT_FAILURE, connectivity.SHUTDOWN):
                    await channel.wait_for_state_change(state)
                    state = channel.get_state(try_to_connect=True)
                self._set_state("dead", "stopped serving")

    async def _push(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            await self._online.wait()
            try:
                await self._send_changes()
            except _Unreachable:
                self._wakeup.set()  # what is left is sent once the mapper answers again
                await asyncio.sleep(self.retry_delay)

    # -- sending ------------------------------------------------------------------------------------

    async def _send_changes(self) -> None:
        service, protocol = self.service, self.info.protocol
        mine = {i: d for i, d in service.devices.items() if d.protocol_name == protocol}
        wanted_models = {d.model_key for d in mine.values() if d.model_key in service.models}
        if self._models_dirty or self._dirty:
            for key in sorted(wanted_models):
                raw = _bytes(model_message(service.models[key]))
                if self.sent_models.get(key) != raw:
                    await self._send_model(key, raw)
            self._models_dirty = False
        for device_id, touched in sorted(self._dirty.items()):
            await self._send_device(device_id, mine.get(device_id))
            if self._dirty.get(device_id) == touched:  # not touched again while we were sending
                del self._dirty[device_id]
        for key in sorted(set(self.sent_models) - wanted_models):
            namespace, name = split_device_id(key)
            if await self._call(
                "RemoveDeviceModel",
                pb.RemoveDeviceModelRequest(modelName=name, modelNamespace=namespace),
                key,
            ):
                self.sent_models.pop(key, None)

    async def _send_device(self, device_id: str, device: Device | None) -> None:
        service = self.service
        if device is None:
            if device_id in self.sent_devices:
                namespace, name = split_device_id(device_id)
                request = pb.RemoveDeviceRequest(deviceName=name, deviceNamespace=namespace)
                if await self._call("RemoveDevice", request, device_id):
                    del self.sent_devices[device_id]
            return
        try:
            message = device_message(device, service.models[device.model_key], service.twins.get(device_id))
        except PermanentError as exc:
            log.error("DMI mapper %s is not sent device %s: %s", self.info.name, device_id, exc)  # noqa: TRY400
            return
        raw = _bytes(message)
        if self.sent_devices.get(device_id) == raw:
            return
        if device_id in self.sent_devices:
            sent = await self._call("UpdateDevice", pb.UpdateDeviceRequest(device=message), device_id)
        else:
            sent = await self._call("RegisterDevice", pb.RegisterDeviceRequest(device=message), device_id)
        if sent:
            self.sent_devices[device_id] = raw

    async def _send_model(self, key: str, raw: bytes) -> None:
        known = key in self.sent_models
        message = pb.DeviceModel.FromString(raw)
        if known:
            sent = await self._call("UpdateDeviceModel", pb.UpdateDeviceModelRequest(model=message), key)
        else:
            sent = await self._call("CreateDeviceModel", pb.CreateDeviceModelRequest(model=message), key)
        if sent:
            self.sent_models[key] = raw

    async def _call(self, method: str, request: Any, what: str) -> bool:
        """Call the mapper on a fresh connection: ``True`` if it accepted, ``False`` if it refused.

        ``_Unreachable`` when it did not answer within the timeout (what was to be sent stays due).
        """
        try:
            async with grpc.aio.insecure_channel(self._target) as channel:
                stub = mapper_service_pb2_grpc.DeviceMapperServiceStub(channel)
                await getattr(stub, method)(request, timeout=self.timeout, wait_for_ready=True)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in _UNREACHABLE:
                log.warning(
                    "DMI mapper %s did not answer %s for %s: %s", self.info.name, method, what, exc.details()
                )
                raise _Unreachable from exc
            log.error(  # noqa: TRY400 (the mapper's answer; no traceback of ours to show)
                "DMI mapper %s refused %s for %s: %s: %s",
                self.info.name,
                method,
                what,
                exc.code().name,
                exc.details(),
            )
            return False
        self.calls[method] = self.calls.get(method, 0) + 1
        log.debug("DMI mapper %s: %s %s", self.info.name, method, what)
        return True


def _bytes(message: Any) -> bytes:
    data: bytes = message.SerializeToString(deterministic=True)
    return data
