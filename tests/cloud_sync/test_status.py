"""Reports into Device status: values, state, timestamps, reportToCloud, one write per report cycle."""

from __future__ import annotations

import asyncio
import time

from cloud_sync import CloudSync
from tests.cloud_sync.conftest import MODEL, CloudStack, LogWaiter, device_yaml
from tests.cloud_sync.faults import FaultProxy, Hold
from tests.cloud_sync.peer import NodePeer, now_ms, value
from twin.link import DeviceReport

STATUS_WRITES = r"/devices/thermo-1/status$"


def twin_of(device: dict, name: str) -> dict:  # type: ignore[type-arg]
    return next(t for t in device["status"]["twins"] if t["propertyName"] == name)


async def test_a_report_shows_in_kubectl_with_its_value_timestamp_and_state(stack: CloudStack) -> None:
    await stack.apply(MODEL + "---" + device_yaml("thermo-1", "node-a"))
    await stack.start_cloud()
    async with stack.peer("node-a") as node:
        stamp = now_ms()
        seq = await node.report(
            {
                "default/thermo-1": DeviceReport(
                    twins={"temperature": value("21.5", stamp), "target": value("20", stamp)},
                    observed_desired={"target": value("20", stamp)},
                    state="online",
                    last_online="2026-01-02T03:04:05Z",
                )
            }
        )
        await node.wait_ack("report", seq)
    await stack.wait("device/thermo-1", "jsonpath={.status.twins[0].reported.value}=21.5")
    device = await stack.device("thermo-1")
    temperature = twin_of(device, "temperature")
    assert temperature["reported"] == {
        "value": "21.5",
        "metadata": {"timestamp": str(stamp), "type": "float"},
    }
    assert twin_of(device, "target")["observedDesired"] == {
        "value": "20",
        "metadata": {"timestamp": str(stamp)},
    }
    assert device["status"]["state"] == "online"
    assert device["status"]["lastOnlineTime"] == "2026-01-02T03:04:05Z"
    table = await stack.kubectl_run("get", "devices")
    header, row = table.splitlines()[:2]
    assert "STATE" in header.split()
    assert row.split()[:4] == ["thermo-1", "node-a", "thermo-model", "online"]


async def test_an_older_report_never_overwrites_a_newer_value(stack: CloudStack) -> None:
    await stack.apply(MODEL + "---" + device_yaml("thermo-1", "node-a"))
    await stack.start_cloud()
    newer = now_ms()
    async with stack.peer("node-a") as node:
        await node.wait_ack(
            "report",
            await node.report({"default/thermo-1": DeviceReport(twins={"temperature": value("30", newer)})}),
        )
        late = await node.report(
            {"default/thermo-1": DeviceReport(twins={"temperature": value("10", newer - 5000)})}
        )
        await node.wait_ack("report", late)  # acknowledged: it is settled, by being older
    device = await stack.device("thermo-1")
    assert twin_of(device, "temperature")["reported"]["value"] == "30"
    assert twin_of(device, "temperature")["reported"]["metadata"]["timestamp"] == str(newer)


async def test_properties_that_do_not_report_to_the_cloud_are_left_out(stack: CloudStack) -> None:
    await stack.apply(MODEL + "---" + device_yaml("thermo-1", "node-a"))
    await stack.start_cloud()
    async with stack.peer("node-a") as node:
        seq = await node.report(
            {
                "default/thermo-1": DeviceReport(
                    twins={"mode": value("eco"), "temperature": value("19"), "nope": value("1")}
                )
            }
        )
        await node.wait_ack("report", seq)
    device = await stack.device("thermo-1")
    assert [t["propertyName"] for t in device["status"]["twins"]] == ["temperature"]


async def test_a_report_for_a_device_that_is_gone_or_not_the_nodes_is_acknowledged_and_not_written(
    stack: CloudStack,
) -> None:
    await stack.apply(MODEL + "---" + device_yaml("thermo-1", "node-a"))
    await stack.start_cloud()
    async with stack.peer("node-b") as intruder, stack.peer("node-a") as node:
        seq = await intruder.report({"default/thermo-1": DeviceReport(twins={"temperature": value("99")})})
        await intruder.wait_ack("report", seq)
        seq = await node.report({"default/never-was": DeviceReport(twins={"temperature": value("1")})})
        await node.wait_ack("report", seq)
    assert "status" not in await stack.device("thermo-1")


async def test_status_writes_are_coalesced_to_one_per_report_cycle_at_100_reports_a_second(
    stack: CloudStack, proxy: FaultProxy
) -> None:
    cycle_ms = 1000
    await stack.apply(MODEL + "---" + device_yaml("thermo-1", "node-a", report_cycle=cycle_ms))
    await stack.start_cloud_through(proxy)
    loop = asyncio.get_running_loop()
    async with stack.peer("node-a") as node:
        started = time.monotonic()
        sent = []
        for index in range(300):  # 100 reports a second for three seconds
            await asyncio.sleep(max(0.0, started + index / 100 - time.monotonic()))
            sent.append(
                await node.report(
                    {"default/thermo-1": DeviceReport(twins={"temperature": value(str(index))})}
                )
            )
        for seq in sent:
            await node.wait_ack("report", seq)
        elapsed = time.monotonic() - started
    assert loop.is_running()
    writes = proxy.count("PATCH", STATUS_WRITES)
    device = await stack.device("thermo-1")
    assert twin_of(device, "temperature")["reported"]["value"] == "299"
    # One write at the first report, then at most one per cycle of the time it all took.
    assert 2 <= writes <= elapsed / (cycle_ms / 1000) + 1, (writes, elapsed)


async def test_a_first_value_and_a_state_change_are_written_at_once_whatever_the_report_cycle(
    stack: CloudStack,
) -> None:
    ten_minutes = 600_000
    await stack.apply(MODEL + "---" + device_yaml("thermo-1", "node-a", report_cycle=ten_minutes))
    await stack.start_cloud()
    async with stack.peer("node-a") as node:
        await node.report({"default/thermo-1": DeviceReport(state="online")})
        await stack.wait("device/thermo-1", "jsonpath={.status.state}=online")
        # The device's first reading, a moment after it came online: not ten minutes later.
        await node.report({"default/thermo-1": DeviceReport(twins={"temperature": value("21.5")})})
        await stack.wait("device/thermo-1", "jsonpath={.status.twins[0].reported.value}=21.5")
        # A new reading of a property the status has waits for the cycle; a state change does not,
        # and takes the newest reading along.
        await node.report({"default/thermo-1": DeviceReport(twins={"temperature": value("22.5")})})
        await node.report({"default/thermo-1": DeviceReport(state="disconnected")})
        await stack.wait("device/thermo-1", "jsonpath={.status.state}=offline")
    device = await stack.device("thermo-1")
    assert twin_of(device, "temperature")["reported"]["value"] == "22.5"


STATUS_PATCHES = r"/devices/[^/]+/status$"
BLOCKERS = "".join("---" + device_yaml(f"block-{index}", "node-a") for index in range(8))


async def fill_write_slots(cloud: CloudSync, proxy: FaultProxy, node: NodePeer) -> Hold:
    """Status writes of the eight ``BLOCKERS`` take every write slot, their requests held at the proxy
    until the ``Hold`` returned is released."""
    hold = Hold("PATCH", STATUS_PATCHES)
    proxy.holds.append(hold)
    await node.report(
        {f"default/block-{index}": DeviceReport(twins={"temperature": value("1")}) for index in range(8)}
    )
    await hold.wait_held(cloud.status.write_slots)
    return hold


async def test_a_device_waiting_for_a_write_slot_carries_every_report_that_arrived_meanwhile_in_one_write(
    stack: CloudStack, proxy: FaultProxy, logs: LogWaiter
) -> None:
    await stack.apply(
        MODEL
        + BLOCKERS
        + "---"
        + device_yaml("thermo-1", "node-a")
        + "---"
        + device_yaml("thermo-b", "node-b")
    )
    cloud = await stack.start_cloud_through(proxy)
    async with stack.peer("node-a") as node:
        hold = await fill_write_slots(cloud, proxy, node)
        stamp = now_ms()
        sent = [
            await node.report({"default/thermo-1": DeviceReport(twins={"temperature": value("1", stamp)})}),
            await node.report(
                {"default/thermo-1": DeviceReport(twins={"temperature": value("2", stamp + 1)})}
            ),
            # A part for node-b's device too: its warning says that this report has been taken in.
            await node.report(
                {
                    "default/thermo-1": DeviceReport(twins={"temperature": value("3", stamp + 2)}),
                    "default/thermo-b": DeviceReport(state="online"),
                }
            ),
        ]
        await logs.wait(r"node node-a reported device default/thermo-b")
        hold.release()
        for seq in sent:
            await node.wait_ack("report", seq)
    # The first value was news, to be written at once: it waited for a slot, and so took the rest.
    assert proxy.count("PATCH", STATUS_WRITES, ok=False) == 1
    assert twin_of(await stack.device("thermo-1"), "temperature")["reported"]["value"] == "3"


async def test_other_requests_go_through_while_status_writes_take_every_write_slot(
    stack: CloudStack, proxy: FaultProxy
) -> None:
    await stack.apply(MODEL + BLOCKERS)
    cloud = await stack.start_cloud_through(proxy)
    async with stack.peer("node-a") as node:
        hold = await fill_write_slots(cloud, proxy, node)
        await stack.apply(device_yaml("thermo-9", "node-a"))
        await stack.stamped("thermo-9")  # the stamp: a PATCH of the Device, while status writes wait
        assert hold.held == cloud.status.write_slots < cloud.api.connections
        hold.release()
