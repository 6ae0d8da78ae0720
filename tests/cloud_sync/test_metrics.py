"""cloud-sync's Prometheus metrics, scraped over HTTP as Prometheus does."""

from __future__ import annotations

import asyncio
import urllib.request

from tests.cloud_sync.conftest import MODEL, CloudStack, device_yaml
from tests.cloud_sync.peer import value
from tests.fixtures.tools import free_port
from twin.link import DeviceReport


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


async def test_metrics_count_messages_writes_latency_devices_by_state_and_ready_nodes(
    stack: CloudStack,
) -> None:
    await stack.apply(MODEL + "---" + device_yaml("thermo-1", "node-a"))
    port = free_port()
    await stack.start_cloud(metrics_port=port, metrics_host="127.0.0.1")
    async with stack.peer("node-a") as node:
        await node.hello()
        await node.heartbeat()
        seq = await node.report(
            {"default/thermo-1": DeviceReport(twins={"temperature": value("20")}, state="online")}
        )
        await node.wait_ack("report", seq)
        await node.raw("report", b"garbage")
        await stack.wait("device/thermo-1", "jsonpath={.status.state}=online")
        await stack.wait("node/node-a", 'jsonpath={.status.conditions[?(@.type=="Ready")].status}=True')
    metrics = await asyncio.to_thread(scrape, port)
    assert metrics['edgetwin_cloud_messages_in_total{kind="report"}'] == 2
    assert metrics['edgetwin_cloud_messages_in_total{kind="hello"}'] == 1
    assert metrics['edgetwin_cloud_messages_invalid_total{kind="report"}'] == 1
    assert metrics['edgetwin_cloud_messages_out_total{kind="ack"}'] >= 1
    assert metrics['edgetwin_cloud_messages_out_total{kind="sync"}'] == 1
    assert metrics['edgetwin_cloud_api_writes_total{resource="devices/status"}'] >= 1
    assert metrics["edgetwin_cloud_sync_latency_seconds_count"] >= 1
    assert metrics['edgetwin_cloud_devices{state="online"}'] == 1
    assert metrics['edgetwin_cloud_nodes{ready="true"}'] == 1
