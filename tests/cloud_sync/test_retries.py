"""An API server that answers 409, 429 or 500, or none at all: retried, acknowledged only once written."""

from __future__ import annotations

import asyncio

import pytest

from tests.cloud_sync.conftest import MODEL, CloudStack, LogWaiter, device_yaml
from tests.cloud_sync.faults import Fault, FaultProxy
from tests.cloud_sync.peer import value
from twin.link import DesiredValue, DeviceReport

STATUS = r"/devices/thermo-1/status$"


@pytest.mark.parametrize(
    ("status", "reason"), [(500, "InternalError"), (429, "TooManyRequests"), (503, "ServiceUnavailable")]
)
async def test_a_refused_status_write_is_retried_and_acknowledged_only_once_written(
    stack: CloudStack, proxy: FaultProxy, status: int, reason: str
) -> None:
    await stack.apply(MODEL + "---" + device_yaml("thermo-1", "node-a"))
    await stack.start_cloud_through(proxy)
    async with stack.peer("node-a") as node:
        acked_while_failing: list[bool] = []
        seq = 0
        proxy.on_fault = lambda fault: acked_while_failing.append(node.acked("report", seq))
        proxy.faults.append(Fault("PATCH", STATUS, status, times=3, reason=reason))
        seq = await node.report(
            {"default/thermo-1": DeviceReport(twins={"temperature": value("21")}, state="online")}
        )
        await node.wait_ack("report", seq)
    assert acked_while_failing == [False, False, False]
    assert proxy.count("PATCH", STATUS, ok=False) == 4
    assert proxy.count("PATCH", STATUS) == 1
    assert (await stack.device("thermo-1"))["status"]["state"] == "online"


async def test_a_conflict_reads_the_device_again_and_writes_the_merge(
    stack: CloudStack, proxy: FaultProxy
) -> None:
    await stack.apply(MODEL + "---" + device_yaml("thermo-1", "node-a"))
    await stack.start_cloud_through(proxy)
    async with stack.peer("node-a") as node:
        proxy.faults.append(Fault("PATCH", STATUS, 409, times=1, reason="Conflict"))
        reads_before = proxy.count("GET", r"/devices/thermo-1$")
        seq = await node.report({"default/thermo-1": DeviceReport(twins={"temperature": value("22")})})
        await node.wait_ack("report", seq)
    assert proxy.count("GET", r"/devices/thermo-1$") > reads_before  # read again after the 409
    assert proxy.count("PATCH", STATUS) == 1
    twins = (await stack.device("thermo-1"))["status"]["twins"]
    assert twins[0]["reported"]["value"] == "22"


async def test_nothing_is_acknowledged_or_dropped_while_the_api_server_is_down(
    stack: CloudStack, logs: LogWaiter
) -> None:
    await stack.apply(MODEL + "---" + device_yaml("thermo-1", "node-a"))
    await stack.start_cloud()
    async with stack.peer("node-a") as node:
        await asyncio.to_thread(stack.api_server.stop)
        first = await node.report({"default/thermo-1": DeviceReport(twins={"temperature": value("1")})})
        second = await node.report({"default/thermo-1": DeviceReport(twins={"temperature": value("2")})})
        await logs.wait(r"status not written: device=default/thermo-1", times=3)  # three rounds of back-off
        assert not node.acked("report", first)
        assert not node.acked("report", second)
        await asyncio.to_thread(stack.api_server.start)
        await node.wait_ack("report", first)
        await node.wait_ack("report", second)
    twins = (await stack.device("thermo-1"))["status"]["twins"]
    assert twins[0]["reported"]["value"] == "2"


async def test_an_edge_desired_value_is_retried_through_server_errors_and_conflicts(
    stack: CloudStack, proxy: FaultProxy
) -> None:
    await stack.apply(MODEL + "---" + device_yaml("thermo-1", "node-a"))
    await stack.start_cloud_through(proxy)
    await stack.stamped("thermo-1")
    async with stack.peer("node-a") as node:
        held = (await node.hello()).devices[0].desired["target"]
        proxy.faults += [
            Fault("PUT", r"/devices/thermo-1$", 500, times=2),
            Fault("PUT", r"/devices/thermo-1$", 409, times=1, reason="Conflict"),
        ]
        seq = await node.desired(
            {"default/thermo-1": {"target": DesiredValue(value="33", cloud=held.cloud, edge=held.edge + 1)}}
        )
        await node.wait_ack("desired", seq)
    assert proxy.count("PUT", r"/devices/thermo-1$", ok=False) == 4
    device = await stack.device("thermo-1")
    assert device["spec"]["properties"][1]["desired"]["value"] == "33"


async def test_a_stamp_refused_by_a_server_error_is_tried_again(stack: CloudStack, proxy: FaultProxy) -> None:
    await stack.apply(MODEL)
    await stack.start_cloud_through(proxy)
    proxy.faults.append(Fault("PATCH", r"/devices/thermo-9$", 500, times=2))
    async with stack.peer("node-a") as node:
        await node.hello()
        await stack.apply(device_yaml("thermo-9", "node-a"))
        change = await node.change_of("default/thermo-9")
    assert change.assignment is not None
    assert change.assignment.desired["target"].value == "20"
    assert proxy.count("PATCH", r"/devices/thermo-9$", ok=False) == 3
