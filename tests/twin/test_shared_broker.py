"""Several nodes on one broker: each answers only for its own devices, and alone it answers 404."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from edgemqtt.client import BrokerAddress
from tests.fixtures.brokers import Mosquitto
from tests.fixtures.mqtt import MqttProbe, mqtt_probe
from tests.fixtures.processes import service
from tests.fixtures.twin import SAMPLE_DEVICES, start_twin
from twin.client import TwinClient
from twin.manifests import Manifests, load_manifests

DEVICE = "$hw/events/device/default"


def node_b_devices() -> Manifests:
    """The sample devices renamed ``b-…`` and moved to node ``edge-node-2``."""
    source = load_manifests([SAMPLE_DEVICES])
    moved = Manifests(models=dict(source.models))
    for device in source.devices.values():
        meta = device.metadata.model_copy(update={"name": f"b-{device.metadata.name}"})
        spec = device.spec.model_copy(update={"nodeName": "edge-node-2"})
        copy = device.model_copy(update={"metadata": meta, "spec": spec})
        moved.devices[copy.id] = copy
    return moved


async def test_each_node_answers_only_for_its_own_devices(broker: BrokerAddress, tmp_path: Path) -> None:
    async with (
        start_twin(broker, [SAMPLE_DEVICES], node="edge-node-1", data_dir=tmp_path / "a") as a,
        start_twin(broker, node_b_devices(), node="edge-node-2", data_dir=tmp_path / "b") as b,
    ):
        await _until_both_see_each_other(a.presence.peers, b.presence.peers, broker)
        async with mqtt_probe(broker, f"{DEVICE}/+/twin/get/result") as probe:
            received = await _ask_each(probe)
    by_event = {body["event_id"]: (topic, body) for topic, body in received}
    assert set(by_event) == {"mine-a", "mine-b"}  # one answer each, none for the ghost
    assert "code" not in by_event["mine-a"][1] and "code" not in by_event["mine-b"][1]


async def _ask_each(probe: MqttProbe) -> list[tuple[str, dict[str, Any]]]:
    for name, event_id in (("ghost", "g"), ("thermostat", "mine-a"), ("b-thermostat", "mine-b")):
        await probe.send(f"{DEVICE}/{name}/twin/get", {"event_id": event_id})
    answers = [await probe.next_json() for _ in range(2)]
    # Each service answers in arrival order, so the ghost was handled before these two answers.
    return answers + [(m.topic, orjson.loads(m.payload)) for m in probe.drain()]


async def _until_both_see_each_other(peers_a: set[str], peers_b: set[str], broker: BrokerAddress) -> None:
    # Presence is retained and delivered on subscribe; a round trip through each service settles it.
    async with TwinClient(broker) as client:
        await client.get("thermostat")
        await client.get("b-thermostat")
    assert peers_a == {"edge-node-2"} and peers_b == {"edge-node-1"}


async def test_a_set_on_a_shared_broker_reports_the_owner_s_answer(
    broker: BrokerAddress, tmp_path: Path
) -> None:
    async with (
        start_twin(broker, [SAMPLE_DEVICES], node="edge-node-1", data_dir=tmp_path / "a"),
        start_twin(broker, node_b_devices(), node="edge-node-2", data_dir=tmp_path / "b") as b,
        TwinClient(broker) as client,
    ):
        changed = await client.set_desired("b-thermostat", {"target": "24"})
    assert changed["target"].desired == "24"
    expected = b.twins["default/b-thermostat"].properties["target"].expected
    assert expected is not None and expected.value == "24"


async def test_a_node_left_alone_answers_404_for_unknown_devices_again(
    broker: BrokerAddress, tmp_path: Path
) -> None:
    async with start_twin(broker, [SAMPLE_DEVICES], node="edge-node-1", data_dir=tmp_path / "a") as a:
        async with start_twin(broker, node_b_devices(), node="edge-node-2", data_dir=tmp_path / "b"):
            await _until_both_see_each_other(a.presence.peers, {"edge-node-1"}, broker)
        async with mqtt_probe(
            broker, f"{DEVICE}/ghost/twin/get/result", f"{DEVICE}/thermostat/twin/get/result"
        ) as probe:
            # The other node's stop cleared its presence; this round trip lets node A take that in.
            await probe.request(
                f"{DEVICE}/thermostat/twin/get", b"{}", f"{DEVICE}/thermostat/twin/get/result"
            )
            body = await probe.request(f"{DEVICE}/ghost/twin/get", b"{}", f"{DEVICE}/ghost/twin/get/result")
    assert body["code"] == 404
    assert a.presence.peers == set()


async def test_a_node_that_dies_is_forgotten_through_its_will(mosquitto: Mosquitto, tmp_path: Path) -> None:
    broker = mosquitto.address
    async with start_twin(broker, [SAMPLE_DEVICES], node="edge-node-1", data_dir=tmp_path / "a") as a:
        args = ["node", "edge-node-2", "--broker", broker.url, "--data-dir", str(tmp_path / "b")]
        with service(*args) as other:
            other.wait_for("twin service for 0 devices")
            async with TwinClient(broker) as client:
                await client.get("thermostat")  # A has taken in B's presence by now
            assert a.presence.peers == {"edge-node-2"}
            other.kill()  # kill -9: no clean stop, only the broker's will
        async with mqtt_probe(broker, f"{DEVICE}/ghost/twin/get/result") as probe:
            body = await probe.request(f"{DEVICE}/ghost/twin/get", b"{}", f"{DEVICE}/ghost/twin/get/result")
    assert body["code"] == 404
    assert a.presence.peers == set()
