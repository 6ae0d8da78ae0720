"""Bad input: invalid Devices get an Event and a condition and disturb no other device; a node's
malformed messages are logged once and ignored."""

from __future__ import annotations

import asyncio

import pytest

from tests.cloud_sync.conftest import MODEL, CloudStack, LogWaiter, device_yaml
from tests.cloud_sync.peer import value
from twin.link import DeviceReport

VALID = 'jsonpath={.status.conditions[?(@.type=="Valid")].status}'
INVALID = {
    "wrong-type": (
        device_yaml("wrong-type", "node-a", target="warm"),
        "InvalidDesiredValue",
        "is not an integer",
    ),
    "out-of-range": (
        device_yaml("out-of-range", "node-a", target="101"),
        "InvalidDesiredValue",
        "above the maximum 100",
    ),
    "no-model": (
        device_yaml("no-model", "node-a", model="missing-model"),
        "UnknownDeviceModel",
        "missing-model",
    ),
    "extra-property": (
        device_yaml(
            "extra-property", "node-a", extra_property="\n    - name: humidity\n      reportToCloud: true"
        ),
        "UnknownProperty",
        "has no property 'humidity'",
    ),
    "no-node": (
        device_yaml("no-node", "node-a").replace("  nodeName: node-a\n", ""),
        "NoNodeName",
        "goes to no node",
    ),
}


async def test_invalid_devices_get_events_and_a_condition_and_are_not_sent(stack: CloudStack) -> None:
    await stack.apply(
        MODEL + "---" + device_yaml("good", "node-a") + "".join("---" + y for y, _, _ in INVALID.values())
    )
    cloud = await stack.start_cloud()
    await stack.stamped("good")
    async with stack.peer("node-a") as node:
        sync = await node.hello()
        assert [a.device.id for a in sync.devices] == ["default/good"]
        report = await node.report(
            {"default/good": DeviceReport(twins={"temperature": value("20")}, state="online")}
        )
        await node.wait_ack("report", report)
    async with asyncio.timeout(20):
        for name, (_, reason, _) in INVALID.items():
            await cloud.recorder.wait_written(reason, name)
    for name, (_, reason, message) in INVALID.items():
        await stack.wait(f"device/{name}", f"{VALID}=False")
        described = await stack.kubectl_run("describe", "device", name)
        assert reason in described and message in described, described
        condition = next(
            c for c in (await stack.device(name))["status"]["conditions"] if c["type"] == "Valid"
        )
        assert (condition["reason"], condition["status"]) == (reason, "False")
    assert (await stack.device("good"))["status"]["state"] == "online"


async def test_a_device_that_turns_invalid_stays_on_its_node_as_it_was_until_fixed(stack: CloudStack) -> None:
    await stack.apply(
        MODEL + "---" + device_yaml("thermo-1", "node-a") + "---" + device_yaml("other", "node-a")
    )
    cloud = await stack.start_cloud()
    await stack.stamped("thermo-1", "other")
    async with stack.peer("node-a") as node:
        await node.hello()
        await stack.apply(device_yaml("thermo-1", "node-a", target="999"))
        async with asyncio.timeout(20):
            await cloud.recorder.wait_written("InvalidDesiredValue", "thermo-1")
        await stack.apply(device_yaml("other", "node-a", target="30"))
        first = await node.change()  # nothing for thermo-1 (no delete, no upsert) came before it
        assert first.assignment is not None and first.assignment.device.id == "default/other"
        await stack.apply(device_yaml("thermo-1", "node-a", target="99"))
        fixed = await node.change_of("default/thermo-1")
        assert fixed.assignment is not None
        assert fixed.assignment.desired["target"].value == "99"
    await stack.wait("device/thermo-1", f"{VALID}=True")


@pytest.mark.parametrize(
    ("kind", "payload"),
    [
        ("report", b"{not json"),
        ("report", b'{"devices": {}}'),
        ("hello", b'{"node": "node-b", "id": "x", "sent_at": 0}'),
        ("heartbeat", b'{"sent_at": "yesterday"}'),
        ("desired", b'{"seq": 1, "devices": {"default/x": {"p": {"value": "1"}}}}'),
        ("bogus", b"{}"),
    ],
)
async def test_a_malformed_message_is_logged_once_and_ignored(
    stack: CloudStack, logs: LogWaiter, kind: str, payload: bytes
) -> None:
    await stack.apply(MODEL + "---" + device_yaml("thermo-1", "node-a"))
    await stack.start_cloud()
    async with stack.peer("node-a") as node:
        await node.raw(kind, payload)
        await node.raw(kind, payload)
        seq = await node.report({"default/thermo-1": DeviceReport(twins={"temperature": value("21")})})
        await node.wait_ack("report", seq)  # the link goes on
    assert logs.count(r"node node-a sent .*ignored \(logged once") == 1
    assert logs.count(r"^node node-a sent .*; ignored$") == 1  # the repeat, at debug level
