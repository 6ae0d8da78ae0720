"""Edge nodes as Kubernetes Nodes: Ready while heartbeats come, NotReady when they stop, Ready again."""

from __future__ import annotations

import json

from tests.cloud_sync.conftest import MODEL, CloudStack, device_yaml
from tests.cloud_sync.peer import value
from twin.link import DeviceReport

READY = 'jsonpath={.status.conditions[?(@.type=="Ready")].status}'
HEARTBEAT = {
    "node_info": {
        "machineID": "m-1",
        "kernelVersion": "6.1.0",
        "osImage": "Debian 12",
        "architecture": "arm64",
    },
    "addresses": [{"type": "InternalIP", "address": "10.0.0.7"}, {"type": "Hostname", "address": "gw-7"}],
    "capacity": {"cpu": "4", "memory": "3900Mi", "pods": "20"},
}


async def test_a_heartbeat_registers_a_ready_edge_node_with_its_lease(stack: CloudStack) -> None:
    await stack.start_cloud()
    async with stack.peer("node-a") as node:
        await node.heartbeat(**HEARTBEAT)
        await stack.wait("node/node-a", f"{READY}=True")
        await stack.wait("lease/node-a", "create", namespace="kube-node-lease")
    found = json.loads(await stack.kubectl_run("get", "node", "node-a", "-o", "json"))
    assert found["metadata"]["labels"]["node-role.kubernetes.io/edge"] == ""
    assert found["metadata"]["labels"]["kubernetes.io/hostname"] == "node-a"
    assert found["status"]["addresses"] == HEARTBEAT["addresses"]
    assert found["status"]["nodeInfo"]["kernelVersion"] == "6.1.0"
    assert found["status"]["capacity"] == found["status"]["allocatable"] == HEARTBEAT["capacity"]
    ready = next(c for c in found["status"]["conditions"] if c["type"] == "Ready")
    assert ready["lastHeartbeatTime"]
    lease = json.loads(
        await stack.kubectl_run("get", "lease", "node-a", "-n", "kube-node-lease", "-o", "json")
    )
    assert lease["spec"]["holderIdentity"] == "node-a"
    assert lease["spec"]["leaseDurationSeconds"] == 30
    assert lease["spec"]["renewTime"].endswith("Z")
    assert lease["metadata"]["ownerReferences"][0]["uid"] == found["metadata"]["uid"]
    table = await stack.kubectl_run("get", "nodes")
    assert table.splitlines()[1].split()[:2] == ["node-a", "Ready"]


async def test_a_silent_node_turns_not_ready_with_its_devices_unknown_and_ready_on_its_next_heartbeat(
    stack: CloudStack,
) -> None:
    await stack.apply(MODEL + "---" + device_yaml("thermo-1", "node-a"))
    await stack.start_cloud(grace=3.0)
    async with stack.peer("node-a") as node:
        await node.heartbeat()
        await node.wait_ack(
            "report",
            await node.report(
                {"default/thermo-1": DeviceReport(twins={"temperature": value("20")}, state="online")}
            ),
        )
        await stack.wait("node/node-a", f"{READY}=True")
        # No more heartbeats.
        await stack.wait("node/node-a", f"{READY}=Unknown")
        await stack.wait("device/thermo-1", "jsonpath={.status.state}=unknown")
        found = json.loads(await stack.kubectl_run("get", "node", "node-a", "-o", "json"))
        ready = next(c for c in found["status"]["conditions"] if c["type"] == "Ready")
        assert ready["reason"] == "NodeStatusUnknown"
        assert "no heartbeat" in ready["message"]
        assert "NotReady" in (await stack.kubectl_run("get", "nodes")).splitlines()[1]
        await node.heartbeat()
        await stack.wait("node/node-a", f"{READY}=True")


async def test_a_nodes_will_makes_it_not_ready_at_once(stack: CloudStack) -> None:
    await stack.apply(MODEL + "---" + device_yaml("thermo-1", "node-a"))
    await stack.start_cloud(grace=3600)
    node = stack.peer("node-a")
    await node.connect()
    try:
        await node.heartbeat()
        await node.wait_ack("report", await node.report({"default/thermo-1": DeviceReport(state="online")}))
        await stack.wait("node/node-a", f"{READY}=True")
        node.die()  # the broker publishes its will: online false
        await stack.wait("node/node-a", f"{READY}=Unknown")
        await stack.wait("device/thermo-1", "jsonpath={.status.state}=unknown")
    finally:
        await node.close()
    found = json.loads(await stack.kubectl_run("get", "node", "node-a", "-o", "json"))
    ready = next(c for c in found["status"]["conditions"] if c["type"] == "Ready")
    assert "will" in ready["message"]
