"""Bad input on the DMI socket: each gets a gRPC error that says what is wrong; the server keeps serving."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest

from node_agent.dmi.server import DmiServer
from node_agent.dmi.v1beta1 import api_pb2 as pb
from tests.fixtures.dmi import DmiMapper


async def _refused(call: object, code: grpc.StatusCode, *words: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    assert caught.value.code() == code, caught.value.details()
    for word in words:
        assert word in (caught.value.details() or ""), caught.value.details()


async def test_a_mapper_without_protocol_name_or_socket_is_refused(
    dmi_node: DmiServer, dmi_mappers: Callable[..., DmiMapper]
) -> None:
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    await _refused(dmi_mappers(dmi_node.socket).register(protocol=""), invalid, "without a protocol")
    await _refused(dmi_mappers(dmi_node.socket, name="").register(), invalid, "mapper.name")
    await _refused(dmi_mappers(dmi_node.socket).register(address=b""), invalid, "no socket")
    await _refused(dmi_mappers(dmi_node.socket).register(address=b"\xff\xfe"), invalid, "no socket")
    assert dmi_node.links == {}


async def test_a_mapper_of_a_protocol_no_device_uses_is_refused_with_the_protocols_in_use(
    dmi_node: DmiServer, dmi_mappers: Callable[..., DmiMapper]
) -> None:
    mapper = dmi_mappers(dmi_node.socket, protocol="modbus-tcp")
    await _refused(mapper.register(), grpc.StatusCode.NOT_FOUND, "'modbus-tcp'", "modbus, sim", "edge-node-1")


async def test_reports_for_devices_it_does_not_serve_are_refused(
    dmi_node: DmiServer, dmi_mappers: Callable[..., DmiMapper]
) -> None:
    mapper = dmi_mappers(dmi_node.socket)
    await mapper.start()
    not_found, invalid = grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT
    # A device of another node, an unknown one, one of another protocol (no DMI mapper serves modbus).
    await _refused(mapper.report("far-boiler", {"temperature": "1"}), not_found, "edge-node-1")
    await _refused(
        mapper.report("boiler", {"temperature": "1"}, namespace="plant"), not_found, "plant/boiler"
    )
    await _refused(mapper.report_state("nobody", "online"), not_found, "nobody")
    await _refused(mapper.report("pump", {"speed": "3"}), invalid, "'modbus'")
    await _refused(mapper.report("", {"temperature": "1"}), invalid, "deviceName")


async def test_bad_reports_are_refused_and_nothing_of_them_is_applied(
    dmi_node: DmiServer, dmi_mappers: Callable[..., DmiMapper]
) -> None:
    mapper = dmi_mappers(dmi_node.socket)
    await mapper.start()
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    await _refused(mapper.report("boiler", {"humidity": "1"}), invalid, "no property 'humidity'")
    await _refused(mapper.report("boiler", {"temperature": "hot"}), invalid, "temperature")
    # All or nothing: the good value in a request with a bad one is not applied either.
    await _refused(mapper.report("boiler", {"temperature": "20", "target": "1.5"}), invalid, "target")
    await _refused(mapper.report("boiler", {}), invalid, "no twins")
    await _refused(mapper.report_state("boiler", "sleepy"), invalid, "'sleepy'")
    await _refused(mapper.report_state("boiler", ""), invalid, "''")
    await dmi_node.reports.drained()
    assert dmi_node.service.twins["default/boiler"].properties["temperature"].actual is None
    assert dmi_node.reports.received == 0


async def test_bytes_that_are_not_a_message_never_stop_the_server(
    dmi_node: DmiServer, dmi_mappers: Callable[..., DmiMapper]
) -> None:
    async with grpc.aio.insecure_channel(f"unix:{dmi_node.socket}") as channel:
        for method in ("MapperRegister", "ReportDeviceStatus", "ReportDeviceStates", "NoSuchMethod"):
            raw = channel.unary_unary(f"/v1beta1.DeviceManagerService/{method}")
            with pytest.raises(grpc.aio.AioRpcError):
                await raw(b"\xff\xff\xff\x0f garbage", timeout=2)
        # A report without its twins message at all.
        raw = channel.unary_unary("/v1beta1.DeviceManagerService/ReportDeviceStatus")
        with pytest.raises(grpc.aio.AioRpcError):
            await raw(pb.ReportDeviceStatusRequest(deviceName="boiler").SerializeToString(), timeout=2)
    mapper = dmi_mappers(dmi_node.socket)
    response = await mapper.start()
    assert len(response.deviceList) == 2
    await mapper.report("boiler", {"temperature": "20"})
