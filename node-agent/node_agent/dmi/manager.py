"""``DeviceManagerService``: what mappers call on the agent's DMI socket, checked before it is believed.

* ``MapperRegister``: a mapper without a name, protocol or socket, or of a protocol no device or
  DeviceModel of this node uses, is refused (``INVALID_ARGUMENT``, ``NOT_FOUND``) with a message
  that says which; otherwise it gets its devices and models and the agent watches it.
* ``ReportDeviceStatus``: reported values, checked against the DeviceModel now (so the mapper hears
  of a bad value) and applied to the twin by the report queue. Its ``observedDesired`` is what the
  mapper last applied: it never sets a desired value (KubeEdge's edge writes it back as the desired
  value and so rolls back a newer one).
* ``ReportDeviceStates``: the device's state.

A report names a device of this node (``NOT_FOUND`` otherwise) whose protocol a registered mapper
serves (``INVALID_ARGUMENT`` otherwise). Mappers built on the framework's template leave
``deviceNamespace`` empty: the name is then looked up in ``default``, then in any namespace where it
is unique. gRPC itself answers bytes that are not a message; nothing a mapper sends stops the server.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, NoReturn

import grpc

from node_agent.dmi.links import MapperInfo
from node_agent.dmi.v1beta1 import api_pb2 as pb
from twin.errors import PermanentError
from twin.values import check_key
from twin.wire import DEVICE_STATES

if TYPE_CHECKING:
    from node_agent.dmi.server import DmiServer

__all__ = ["DeviceManager"]

log = logging.getLogger(__name__)


async def _refuse(context: Any, code: grpc.StatusCode, message: str) -> NoReturn:
    log.info("DMI: refused: %s", message)
    await context.abort(code, message)
    raise AssertionError("abort returns only by raising")  # pragma: no cover


class DeviceManager:
    """The servicer of ``v1beta1.DeviceManagerService`` for one ``DmiServer``."""

    def __init__(self, server: DmiServer) -> None:
        self.server = server

    async def MapperRegister(
        self, request: pb.MapperRegisterRequest, context: Any
    ) -> pb.MapperRegisterResponse:
        mapper = request.mapper
        name = mapper.name.strip()
        invalid = grpc.StatusCode.INVALID_ARGUMENT
        if not request.HasField("mapper") or not name:
            await _refuse(
                context, invalid, "MapperRegister needs mapper.name (common.name in the mapper's config.yaml)"
            )
        if not mapper.protocol.strip():
            await _refuse(
                context,
                invalid,
                f"mapper {name} registered without a protocol (common.protocol in its config.yaml)",
            )
        in_use = self.server.protocols_in_use()
        if mapper.protocol not in in_use:
            known = ", ".join(sorted(in_use)) or "none"
            await _refuse(
                context,
                grpc.StatusCode.NOT_FOUND,
                f"mapper {name}: no device or device model of node {self.server.node} uses protocol "
                f"{mapper.protocol!r} (protocols in use: {known})",
            )
        try:
            socket = mapper.address.decode()
        except UnicodeDecodeError:
            socket = ""
        if not socket.strip():
            await _refuse(
                context,
                invalid,
                f"mapper {name} announced no socket of its own (grpc_server.socket_path in its config.yaml)",
            )
        info = MapperInfo(name, mapper.protocol, socket, mapper.version)
        devices, models = self.server.register(info, with_data=request.withData)
        return pb.MapperRegisterResponse(deviceList=devices, modelList=models)

    async def ReportDeviceStatus(
        self, request: pb.ReportDeviceStatusRequest, context: Any
    ) -> pb.ReportDeviceStatusResponse:
        device_id = await self._device(request.deviceNamespace, request.deviceName, context)
        invalid = grpc.StatusCode.INVALID_ARGUMENT
        twins = request.reportedDevice.twins
        if not twins:
            await _refuse(context, invalid, f"ReportDeviceStatus for {device_id} carries no twins")
        schema = self.server.service.registry.schemas[device_id]
        values: dict[str, str] = {}
        for twin in twins:
            name = twin.propertyName
            prop = schema.properties.get(name)
            if prop is None:
                await _refuse(context, invalid, f"device {device_id} has no property {name[:130]!r}")
            if not twin.HasField("reported"):
                await _refuse(
                    context, invalid, f"device {device_id} property {name}: the twin has no reported value"
                )
            try:
                check_key(name)
                prop.check_reported(twin.reported.value)
            except PermanentError as exc:
                await _refuse(context, invalid, f"device {device_id}: {exc}")
            values[name] = twin.reported.value
        self.server.reports.report(device_id, values)
        return pb.ReportDeviceStatusResponse()

    async def ReportDeviceStates(
        self, request: pb.ReportDeviceStatesRequest, context: Any
    ) -> pb.ReportDeviceStatesResponse:
        device_id = await self._device(request.deviceNamespace, request.deviceName, context)
        state = request.state.strip().lower()
        if state not in DEVICE_STATES:
            await _refuse(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"state {request.state[:40]!r} for {device_id} is not one of {', '.join(DEVICE_STATES)}",
            )
        self.server.reports.report_state(device_id, state)
        return pb.ReportDeviceStatesResponse()

    async def _device(self, namespace: str, name: str, context: Any) -> str:
        """The id of the reported device; refuses an unknown one or one no registered mapper serves."""
        server = self.server
        devices = server.service.devices
        if not name:
            await _refuse(
                context, grpc.StatusCode.INVALID_ARGUMENT, "the report names no device (deviceName is empty)"
            )
        if namespace:
            candidates = [f"{namespace}/{name}"]
        else:
            by_name = [i for i, d in devices.items() if d.metadata.name == name]
            candidates = [f"default/{name}"] if f"default/{name}" in devices else by_name
        found = [c for c in candidates if c in devices]
        what = (f"{namespace}/{name}" if namespace else name)[:300]
        if len(found) > 1:
            await _refuse(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"device name {what} is used in several namespaces: set deviceNamespace",
            )
        if not found:
            await _refuse(
                context, grpc.StatusCode.NOT_FOUND, f"device {what} is not a device of node {server.node}"
            )
        device = devices[found[0]]
        if device.protocol_name not in server.links:
            await _refuse(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"device {device.id} uses protocol {device.protocol_name!r}, which no mapper registered "
                f"over DMI on node {server.node}",
            )
        return device.id
