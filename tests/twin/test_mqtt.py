"""The MQTT transport: TCP_NODELAY on every connection, and surviving a broker restart."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from tests.fixtures.brokers import Mosquitto
from tests.fixtures.twin import SAMPLE_DEVICES, start_twin
from twin.client import TwinClient
from twin.errors import BrokerUnavailable
from twin.mqtt import BrokerAddress, Message, MqttClient


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("mqtt://10.0.0.5:1884", BrokerAddress("10.0.0.5", 1884)),
        ("127.0.0.1", BrokerAddress("127.0.0.1", 1883)),
        ("mqtt://user:pw@host", BrokerAddress("host", 1883, "user", "pw")),
        ("tcp://h:1", BrokerAddress("h", 1)),
    ],
)
def test_broker_urls_are_parsed(url: str, address: BrokerAddress) -> None:
    assert BrokerAddress.parse(url) == address


@pytest.mark.parametrize("url", ["http://h:1", "mqtt://h:notaport"])
def test_bad_broker_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="broker URL"):
        BrokerAddress.parse(url)


async def test_every_connection_sets_tcp_nodelay(broker: BrokerAddress) -> None:
    async with MqttClient(broker) as client:
        sock = client.socket
        assert sock is not None
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


async def test_connecting_to_nothing_raises_broker_unavailable() -> None:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    with pytest.raises(BrokerUnavailable, match="cannot connect"):
        await MqttClient(BrokerAddress("127.0.0.1", port)).connect(timeout=2)


async def test_subscriptions_come_back_after_the_broker_restarts(private_mosquitto: Mosquitto) -> None:
    received: asyncio.Queue[Message] = asyncio.Queue()
    async with MqttClient(private_mosquitto.address, on_message=received.put_nowait) as subscriber:
        await subscriber.subscribe("plant/#")
        private_mosquitto.restart()
        async with asyncio.timeout(20):
            await subscriber.wait_connected()
            while True:
                # The subscriber's re-subscription races this publisher: publish until it lands.
                async with MqttClient(private_mosquitto.address) as publisher:
                    await publisher.publish_confirmed("plant/pump", b"after restart")
                try:
                    async with asyncio.timeout(0.5):
                        message = await received.get()
                        break
                except TimeoutError:
                    continue
    assert message == Message("plant/pump", b"after restart")


async def test_twin_service_keeps_serving_after_the_broker_restarts(
    private_mosquitto: Mosquitto, tmp_path: Path
) -> None:
    broker = private_mosquitto.address
    async with start_twin(broker, [SAMPLE_DEVICES], data_dir=tmp_path):
        private_mosquitto.restart()
        async with asyncio.timeout(20):
            while True:
                try:
                    async with TwinClient(broker, timeout=0.5) as client:
                        state = await client.get("default/thermostat")
                        break
                except Exception:  # noqa: BLE001 - the twin may not have re-subscribed yet
                    await asyncio.sleep(0.1)
        assert state["target"].desired == "20"
