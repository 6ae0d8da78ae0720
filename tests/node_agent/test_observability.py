"""What an operator sees of a node: Prometheus metrics on --metrics-port and one log line per event."""

from __future__ import annotations

import asyncio
import logging
import socket
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from edgemqtt.client import BrokerAddress
from node_agent import Gateway, GatewaySettings, PieceFailed
from tests.fixtures.brokers import Mosquitto
from tests.fixtures.mqtt import mqtt_probe
from tests.fixtures.tools import free_port
from tests.node_agent.cloud_peer import CloudPeer, thermo, thermo_model
from tests.node_agent.nodes import joined_node
from twin.client import TwinClient

T1 = "default/t1"


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def metrics_until(port: int, wanted: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> None:
    """Scrape until every wanted sample has at least its value (gauges are refreshed every 0.1 s)."""
    async with asyncio.timeout(10):
        while True:
            samples = await asyncio.to_thread(scrape, port)
            if all(samples.get(key, -1) >= value for key, value in wanted.items()):
                return
            await asyncio.sleep(0.05)


async def test_the_node_serves_link_outbox_and_device_metrics(
    embedded_mqtt: BrokerAddress, private_mosquitto: Mosquitto, tmp_path: Path
) -> None:
    port = free_port()
    peer = CloudPeer(private_mosquitto.address)
    peer.assign(thermo("t1", report_ms=100), thermo_model())
    async with (
        peer.running(),
        joined_node(embedded_mqtt, private_mosquitto.address, tmp_path, metrics_port=port) as node,
    ):
        assert node.link is not None
        await node.link.synced_once.wait()
        async with mqtt_probe(embedded_mqtt, "$hw/events/device/+/+/state/update/result") as probe:
            await probe.request(
                f"$hw/events/device/{T1}/state/update",
                {"event_id": "", "timestamp": 0, "state": "ok"},
                f"$hw/events/device/{T1}/state/update/result",
            )
        await peer.wait_for("report", lambda r: T1 in r.devices and r.devices[T1].state == "online")
        await metrics_until(
            port,
            {
                ("edgetwin_node_link_connected", ()): 1,
                ("edgetwin_node_link_messages_sent_total", (("kind", "hello"),)): 1,
                ("edgetwin_node_link_messages_sent_total", (("kind", "heartbeat"),)): 1,
                ("edgetwin_node_link_messages_sent_total", (("kind", "report"),)): 1,
                ("edgetwin_node_link_messages_received_total", (("kind", "sync"),)): 1,
                ("edgetwin_node_link_acks_total", (("kind", "report"),)): 1,
                ("edgetwin_node_devices", (("state", "online"),)): 1,
                ("edgetwin_node_link_sync_seconds_count", ()): 1,
            },
        )
        peer.auto_ack = False
        async with TwinClient(embedded_mqtt) as app:
            await app.report(T1, {"temp": "30.5", "target": "21"})
        await metrics_until(
            port, {("edgetwin_node_outbox_devices", ()): 1, ("edgetwin_node_outbox_values", ()): 2}
        )
        private_mosquitto.stop()
        samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        async with asyncio.timeout(10):
            while samples.get(("edgetwin_node_link_connected", ()), 1) != 0:
                samples = await asyncio.to_thread(scrape, port)
                await asyncio.sleep(0.05)


async def test_a_metrics_port_the_node_cannot_have_stops_it_with_the_reason(
    embedded_mqtt: BrokerAddress, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        gateway = Gateway(
            GatewaySettings(node="n1", broker=embedded_mqtt, data_dir=tmp_path, metrics_port=port)
        )
        with pytest.raises(PieceFailed, match=r"the metrics server failed: OSError.*Address already in use"):
            async with asyncio.timeout(10):
                await gateway.run()


async def test_the_link_logs_each_event_once_with_its_node_and_cloud(
    embedded_mqtt: BrokerAddress,
    private_mosquitto: Mosquitto,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "node_agent")
    peer = CloudPeer(private_mosquitto.address)
    peer.assign(thermo("t1"), thermo_model())
    async with peer.running(), joined_node(embedded_mqtt, private_mosquitto.address, tmp_path) as node:
        assert node.link is not None
        await node.link.synced_once.wait()
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("node_agent")]
    cloud = private_mosquitto.address.url
    assert f"cloud link: node=edge-node-1 cloud={cloud} joining" in lines
    assert f"cloud link: node=edge-node-1 cloud={cloud} connected session_present=False" in lines
    assert "cloud link: node=edge-node-1 synced devices=1 changed=1 removed=0" in lines
