"""Devices go down to their nodes: in the answer to a hello, then as they change (docs/cloud-link.md)."""

from __future__ import annotations

from tests.cloud_sync.conftest import MODEL, CloudStack, device_yaml
from tests.cloud_sync.peer import NodePeer
from twin.link import HeldDevice, Listening


async def test_an_applied_device_reaches_its_node_in_the_sync_with_its_versions(stack: CloudStack) -> None:
    await stack.apply(MODEL + "---" + device_yaml("thermo-1", "node-a"))
    await stack.start_cloud()
    await stack.stamped("thermo-1")
    async with stack.peer("node-a") as node:
        sync = await node.hello()
    assert [a.device.id for a in sync.devices] == ["default/thermo-1"]
    assignment = sync.devices[0]
    assert assignment.model.key == "default/thermo-model"
    assert assignment.generation == 1
    assert assignment.device.status is None
    assert "managedFields" not in (assignment.device.metadata.model_extra or {})
    target = assignment.desired["target"]
    assert (target.value, target.edge) == ("20", 0)
    assert target.cloud >= 1
    assert assignment.revision
    assert sync.removed == []


async def test_a_node_that_is_up_to_date_gets_an_empty_sync_and_one_that_holds_strays_is_told(
    stack: CloudStack,
) -> None:
    await stack.apply(MODEL + "---" + device_yaml("thermo-1", "node-a"))
    await stack.start_cloud()
    await stack.stamped("thermo-1")
    async with stack.peer("node-a") as node:
        first = (await node.hello()).devices[0]
        held = HeldDevice(
            generation=first.generation,
            revision=first.revision,
            desired={name: (d.cloud, d.edge) for name, d in first.desired.items()},
        )
        again = await node.hello({"default/thermo-1": held, "default/gone": HeldDevice(generation=3)})
    assert again.devices == []
    assert again.removed == ["default/gone"]


async def test_a_node_without_the_revision_is_compared_by_generation(stack: CloudStack) -> None:
    await stack.apply(MODEL + "---" + device_yaml("thermo-1", "node-a"))
    await stack.start_cloud()
    await stack.stamped("thermo-1")
    async with stack.peer("node-a") as node:
        first = (await node.hello()).devices[0]
        pairs = {name: (d.cloud, d.edge) for name, d in first.desired.items()}
        same = await node.hello({"default/thermo-1": HeldDevice(generation=first.generation, desired=pairs)})
        older = await node.hello(
            {"default/thermo-1": HeldDevice(generation=first.generation - 1, desired=pairs)}
        )
        stale_pair = {"target": (pairs["target"][0] - 1, 0)}
        old_value = await node.hello(
            {"default/thermo-1": HeldDevice(generation=first.generation, desired=stale_pair)}
        )
    assert same.devices == []
    assert [a.device.id for a in older.devices] == ["default/thermo-1"]
    assert [a.device.id for a in old_value.devices] == ["default/thermo-1"]


async def test_a_desired_value_patched_with_kubectl_reaches_the_node_with_a_bumped_cloud_counter(
    stack: CloudStack,
) -> None:
    await stack.apply(MODEL + "---" + device_yaml("thermo-1", "node-a"))
    await stack.start_cloud()
    await stack.stamped("thermo-1")
    async with stack.peer("node-a") as node:
        before = (await node.hello()).devices[0].desired["target"]
        await stack.kubectl_run(
            "patch", "device", "thermo-1", "--type", "json",
            "-p", '[{"op": "replace", "path": "/spec/properties/1/desired/value", "value": "42"}]',
        )  # fmt: skip
        change = await node.change_of("default/thermo-1")
    assert change.assignment is not None
    after = change.assignment.desired["target"]
    assert (after.value, after.cloud, after.edge) == ("42", before.cloud + 1, before.edge)
    annotation = (await stack.device("thermo-1"))["metadata"]["annotations"][
        "twin.edgetwin.io/desired-versions"
    ]
    assert '"value":"42"' in annotation


async def test_created_deleted_and_moved_devices_reach_the_nodes_concerned(stack: CloudStack) -> None:
    await stack.apply(MODEL)
    await stack.start_cloud()
    async with stack.peer("node-a") as a, stack.peer("node-b") as b:
        await a.hello()
        await b.hello()
        await stack.apply(device_yaml("thermo-2", "node-a"))
        created = await a.change_of("default/thermo-2")
        assert created.assignment is not None
        assert created.assignment.desired["target"].value == "20"

        await stack.apply(device_yaml("thermo-2", "node-b"))
        await a.change_of("default/thermo-2", op="delete")
        moved = await b.change_of("default/thermo-2")
        assert moved.assignment is not None
        assert moved.assignment.device.spec.nodeName == "node-b"

        await stack.kubectl_run("delete", "device", "thermo-2")
        deleted = await b.change_of("default/thermo-2", op="delete")
        assert deleted.id == "default/thermo-2"


async def test_a_changed_device_model_sends_its_devices_again(stack: CloudStack) -> None:
    await stack.apply(
        MODEL + "---" + device_yaml("thermo-1", "node-a") + "---" + device_yaml("thermo-3", "node-a")
    )
    await stack.start_cloud()
    await stack.stamped("thermo-1", "thermo-3")
    async with stack.peer("node-a") as node:
        first = {a.device.id: a for a in (await node.hello()).devices}
        await stack.apply(MODEL.replace('maximum: "100"', 'maximum: "90"'))
        one = await node.change()
        two = await node.change()
    changed = {c.assignment.device.id: c.assignment for c in (one, two) if c.assignment is not None}
    assert set(changed) == {"default/thermo-1", "default/thermo-3"}
    for device_id, assignment in changed.items():
        assert assignment.model.property("target").maximum == "90"  # type: ignore[union-attr]
        assert assignment.revision != first[device_id].revision
        assert assignment.generation == first[device_id].generation  # the Device itself did not change


async def test_a_status_write_sends_nothing_down(stack: CloudStack) -> None:
    await stack.apply(MODEL + "---" + device_yaml("thermo-1", "node-a"))
    await stack.start_cloud()
    await stack.stamped("thermo-1")
    async with stack.peer("node-a") as node:
        await node.hello()
        await stack.kubectl_run(
            "patch",
            "device",
            "thermo-1",
            "--subresource=status",
            "--type=merge",
            "-p",
            '{"status":{"state":"online"}}',
        )
        await stack.apply(device_yaml("marker", "node-a"))
        change = await node.change()
    assert change.assignment is not None
    assert change.assignment.device.id == "default/marker"  # nothing came for thermo-1 before it


async def test_a_node_that_stayed_connected_while_cloud_sync_was_down_gets_what_changed_meanwhile(
    stack: CloudStack,
) -> None:
    await stack.apply(MODEL + "---" + device_yaml("thermo-1", "node-a"))
    first = await stack.start_cloud()
    await stack.stamped("thermo-1")
    async with stack.peer("node-a") as node:
        held = (await node.hello()).devices[0]
        await node.heartbeat()
        await stack.wait("node/node-a", 'jsonpath={.status.conditions[?(@.type=="Ready")].status}=True')
        await stack.stop_cloud(first)
        await stack.apply(device_yaml("thermo-1", "node-a", report_cycle=500))  # no replica is running
        await stack.start_cloud()
        change = await node.change_of("default/thermo-1")
    assert change.assignment is not None
    assert change.assignment.generation == held.generation + 1
    assert change.assignment.device.spec.properties[0].reportCycle == 500


async def test_a_replica_that_begins_listening_tells_every_admitted_node(stack: CloudStack) -> None:
    # Connected before any cloud-sync: a hello sent now would reach no subscriber and be lost.
    async with (
        NodePeer(stack.broker, "node-a", stack.token) as node_a,
        NodePeer(stack.broker, "node-b", stack.token) as node_b,
    ):
        await stack.start_cloud()
        heard = [
            Listening.model_validate_json(message.payload)
            for _, message in [
                await peer.other_message(lambda m: m.topic.endswith("/down/listening"))
                for peer in (node_a, node_b)
            ]
        ]
    assert [h.replica for h in heard] == [stack.cloud.settings.replica] * 2
