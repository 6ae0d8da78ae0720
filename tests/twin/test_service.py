"""The twin service over real brokers: every test runs against mosquitto and the embedded broker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from edgemqtt.client import BrokerAddress
from tests.fixtures.mqtt import mqtt_probe
from tests.fixtures.twin import SAMPLE_DEVICES, start_twin
from twin.manifests import load_manifests
from twin.service import TwinService

DEV = "$hw/events/device/default/thermostat"
LEGACY = "$hw/events/device/thermostat"
BOILER = "$hw/events/device/plant/boiler"


def desired(name: str, value: str, event_id: str = "e1") -> dict[str, Any]:
    return {
        "event_id": event_id,
        "timestamp": 0,
        "twin": {name: {"expected": {"value": value}, "metadata": {"type": "Updated"}}},
    }


def reported(name: str, value: str) -> dict[str, Any]:
    return {
        "event_id": "",
        "timestamp": 0,
        "twin": {name: {"actual": {"value": value}, "metadata": {"type": "Updated"}}},
    }


async def test_desired_update_publishes_result_then_document_then_delta(
    twin_service: TwinService, broker: BrokerAddress
) -> None:
    async with mqtt_probe(broker, f"{DEV}/twin/update/+") as probe:
        await probe.send(f"{DEV}/twin/update", desired("target", "22"))
        topics = []
        bodies = []
        for _ in range(3):
            topic, body = await probe.next_json()
            topics.append(topic)
            bodies.append(body)
    assert topics == [f"{DEV}/twin/update/result", f"{DEV}/twin/update/document", f"{DEV}/twin/update/delta"]
    result, document, delta = bodies
    assert result["event_id"] == "e1"
    assert result["twin"]["target"]["expected"]["value"] == "22"
    assert result["twin"]["target"]["expected_version"] == {"cloud": 1, "edge": 1}
    assert document["twin"]["target"]["last"]["expected"]["value"] == "20"
    assert document["twin"]["target"]["current"]["expected"]["value"] == "22"
    assert document["twin"]["target"]["current"]["metadata"]["type"] == "int"
    assert delta["delta"] == {"target": "22"}
    assert set(delta["twin"]) == {"target"}


async def test_reported_value_reaching_desired_clears_the_delta(
    twin_service: TwinService, broker: BrokerAddress
) -> None:
    async with mqtt_probe(broker, f"{DEV}/twin/update/+", f"{DEV}/twin/get/result") as probe:
        await probe.send(f"{DEV}/twin/update", desired("mode", "eco"))
        kinds = [(await probe.next_json())[0].rsplit("/", 1)[1] for _ in range(3)]
        assert kinds == ["result", "document", "delta"]
        await probe.send(f"{DEV}/twin/update", reported("mode", "eco"))
        topic, _ = await probe.next_json()
        assert topic.endswith("/result")
        topic, document = await probe.next_json()
        assert topic.endswith("/document")
        assert document["twin"]["mode"]["current"]["actual"]["value"] == "eco"
        topic, delta = await probe.next_json()
    # Only the manifest's desired target (never reported) is still pending; mode has settled.
    assert topic.endswith("/delta")
    assert delta["delta"] == {"target": "20"}


async def test_legacy_topics_are_answered_on_the_bare_name_and_events_go_to_both(
    twin_service: TwinService, broker: BrokerAddress
) -> None:
    async with mqtt_probe(broker, f"{LEGACY}/twin/update/+", f"{DEV}/twin/update/document") as probe:
        await probe.send(f"{LEGACY}/twin/update", desired("mode", "eco"))
        received = [(await probe.next_json())[0] for _ in range(4)]
    assert received[0] == f"{LEGACY}/twin/update/result"
    assert sorted(received[1:3]) == sorted([f"{DEV}/twin/update/document", f"{LEGACY}/twin/update/document"])
    assert received[3] == f"{LEGACY}/twin/update/delta"


async def test_namespaced_devices_use_two_level_ids_only(
    twin_service: TwinService, broker: BrokerAddress
) -> None:
    async with mqtt_probe(broker, f"{BOILER}/twin/update/+", "$hw/events/device/boiler/#") as probe:
        await probe.send(f"{BOILER}/twin/update", desired("target", "12"))
        received = [(await probe.next_json())[0] for _ in range(3)]
    assert received == [
        f"{BOILER}/twin/update/result",
        f"{BOILER}/twin/update/document",
        f"{BOILER}/twin/update/delta",
    ]


async def test_get_returns_every_property_with_whole_state(
    twin_service: TwinService, broker: BrokerAddress
) -> None:
    async with mqtt_probe(broker, f"{DEV}/twin/get/result") as probe:
        body = await probe.request(
            f"{DEV}/twin/get", {"event_id": "g1", "timestamp": 0}, f"{DEV}/twin/get/result"
        )
    assert body["event_id"] == "g1"
    assert set(body["twin"]) == {"temperature", "target", "power", "mode"}
    assert body["twin"]["target"]["expected"]["value"] == "20"
    # Always present, so clients may read current.expected.value unchecked.
    assert body["twin"]["temperature"]["expected"] == {"value": "", "metadata": {"timestamp": 0}}


async def test_state_update_accepts_kubeedge_capitalised_key(
    twin_service: TwinService, broker: BrokerAddress
) -> None:
    async with mqtt_probe(broker, f"{LEGACY}/state/update/result") as probe:
        body = await probe.request(
            f"{LEGACY}/state/update",
            {"event_id": "", "timestamp": 0, "State": "online"},
            f"{LEGACY}/state/update/result",
        )
    assert body["device"]["name"] == "thermostat"
    assert body["device"]["state"] == "online"
    assert body["device"]["lastOnlineTime"].endswith("Z")
    assert twin_service.twins["default/thermostat"].state == "online"


async def test_membership_get_lists_devices_with_what_a_mapper_needs(
    twin_service: TwinService, broker: BrokerAddress
) -> None:
    node = "$hw/events/node/edge-node-1/membership"
    async with mqtt_probe(broker, f"{node}/get/result") as probe:
        body = await probe.request(f"{node}/get", {"event_id": "m"}, f"{node}/get/result")
    ids = [d["id"] for d in body["devices"]]
    assert ids == ["default/thermostat", "plant/boiler"]
    first = body["devices"][0]
    assert first["name"] == "thermostat"
    assert first["edgetwin"]["device"]["spec"]["protocol"]["protocolName"] == "virtual"
    assert first["edgetwin"]["model"]["metadata"]["name"] == "thermostat-model"


async def test_membership_updated_announces_added_and_removed_devices(
    twin_service: TwinService, broker: BrokerAddress
) -> None:
    manifests = load_manifests([SAMPLE_DEVICES])
    del manifests.devices["plant/boiler"]
    async with mqtt_probe(broker, "$hw/events/node/edge-node-1/membership/updated") as probe:
        await twin_service.set_definitions(manifests)
        _, body = await probe.next_json()
    assert body["removed_devices"] == [{"id": "plant/boiler", "name": "boiler"}]
    assert body["added_devices"] == []
    assert "plant/boiler" not in twin_service.twins


BAD_UPDATES: list[tuple[str, str, bytes, int, str]] = [
    ("malformed JSON", DEV, b'{"twin": {', 400, "not valid JSON"),
    ("not an object", DEV, b"[1, 2]", 400, "must be a JSON object"),
    ("empty payload", DEV, b"", 400, "empty payload"),
    ("missing twin key", DEV, b'{"event_id": "x"}', 400, "missing key 'twin'"),
    (
        "unknown device",
        "$hw/events/device/default/ghost",
        orjson.dumps(desired("target", "1")),
        404,
        "not known",
    ),
    ("unknown property", DEV, orjson.dumps(desired("colour", "red")), 400, "no property 'colour'"),
    ("wrong type", DEV, orjson.dumps(desired("target", "abc")), 400, "'abc' is not an integer"),
    ("above maximum", DEV, orjson.dumps(desired("target", "31")), 400, "above the maximum 30"),
    ("below minimum", DEV, orjson.dumps(desired("target", "-4")), 400, "below the minimum 5"),
    ("ReadOnly property", DEV, orjson.dumps(desired("temperature", "3")), 400, "ReadOnly"),
    ("space in value", DEV, orjson.dumps(desired("mode", "a b")), 400, "no spaces"),
    ("forbidden key", DEV, orjson.dumps(desired("ta rget", "5")), 400, "twin key 'ta rget' is not allowed"),
    (
        "oversized",
        DEV,
        b'{"twin": {"mode": {"expected": {"value": "' + b"a" * 300_000 + b'"}}}}',
        400,
        "exceeds",
    ),
    ("reported wrong type", DEV, orjson.dumps(reported("power", "maybe")), 400, "is not a boolean"),
    ("reported empty number", DEV, orjson.dumps(reported("temperature", "")), 400, "is not a number"),
    ("reported beyond int64", DEV, orjson.dumps(reported("target", "9" * 20)), 400, "64-bit integer range"),
    ("reported without value", DEV, b'{"twin": {"temperature": {"actual": {}}}}', 400, "has no 'value'"),
    ("desired non-finite", DEV, orjson.dumps(desired("temperature", "inf")), 400, "ReadOnly"),
    ("bad JSON for an unknown device", "$hw/events/device/default/ghost", b"{", 400, "not valid JSON"),
    ("twin not a mapping", DEV, b'{"twin": "on"}', 400, "invalid payload"),
]


@pytest.mark.parametrize(
    ("case", "device_topic", "payload", "code", "reason"), BAD_UPDATES, ids=[c[0] for c in BAD_UPDATES]
)
async def test_bad_update_gets_error_result_and_changes_nothing(
    twin_service: TwinService,
    broker: BrokerAddress,
    case: str,
    device_topic: str,
    payload: bytes,
    code: int,
    reason: str,
) -> None:
    before = {k: v.to_record() for k, v in twin_service.twins.items()}
    result_topic = f"{device_topic}/twin/update/result"
    async with mqtt_probe(broker, result_topic, f"{DEV}/twin/get/result") as probe:
        body = await probe.request(f"{device_topic}/twin/update", payload, result_topic)
        assert body["code"] == code, body
        assert reason in body["reason"]
        # The service goes on serving: a good request right after is answered.
        answer = await probe.request(f"{DEV}/twin/get", b'{"event_id": "after"}', f"{DEV}/twin/get/result")
    assert answer["event_id"] == "after"
    assert {k: v.to_record() for k, v in twin_service.twins.items()} == before


async def test_an_update_with_one_bad_property_changes_none(
    twin_service: TwinService, broker: BrokerAddress
) -> None:
    payload = {
        "event_id": "mixed",
        "twin": {"mode": {"expected": {"value": "eco"}}, "target": {"expected": {"value": "99"}}},
    }
    async with mqtt_probe(broker, f"{DEV}/twin/update/result") as probe:
        body = await probe.request(f"{DEV}/twin/update", payload, f"{DEV}/twin/update/result")
    assert body["code"] == 400
    assert body["event_id"] == "mixed"
    assert twin_service.twins["default/thermostat"].properties["mode"].expected is None


async def test_bad_state_and_get_requests_are_refused(
    twin_service: TwinService, broker: BrokerAddress
) -> None:
    async with mqtt_probe(broker, f"{DEV}/state/update/result", f"{DEV}/twin/get/result") as probe:
        body = await probe.request(f"{DEV}/state/update", {"state": "exploded"}, f"{DEV}/state/update/result")
        assert body["code"] == 400
        assert "exploded" in body["reason"]
        body = await probe.request(f"{DEV}/state/update", b"{}", f"{DEV}/state/update/result")
        assert body["code"] == 400
        body = await probe.request(f"{DEV}/twin/get", b"not json", f"{DEV}/twin/get/result")
        assert body["code"] == 400


async def test_desired_value_is_on_disk_before_the_result_is_published(
    broker: BrokerAddress, tmp_path: Path
) -> None:
    # A long flush interval: only the durable path can have written the file by the time of the result.
    async with start_twin(broker, [SAMPLE_DEVICES], data_dir=tmp_path, flush_interval=3600) as service:
        async with mqtt_probe(broker, f"{DEV}/twin/update/result") as probe:
            await probe.request(f"{DEV}/twin/update", desired("mode", "eco"), f"{DEV}/twin/update/result")
            stored = orjson.loads((tmp_path / "twins" / "default__thermostat.json").read_bytes())
        assert stored["_default"]["1"]["properties"]["mode"]["expected"][0] == "eco"
        assert service.twins["default/thermostat"].properties["mode"].expected is not None


async def test_twins_come_back_after_a_restart(broker: BrokerAddress, tmp_path: Path) -> None:
    async with (
        start_twin(broker, [SAMPLE_DEVICES], data_dir=tmp_path) as _,
        mqtt_probe(broker, f"{DEV}/twin/update/result") as probe,
    ):
        await probe.request(f"{DEV}/twin/update", desired("mode", "eco"), f"{DEV}/twin/update/result")
        await probe.request(
            f"{DEV}/twin/update", reported("temperature", "19.5"), f"{DEV}/twin/update/result"
        )
    # Restart with no manifests: everything comes from the store.
    async with start_twin(broker, None, data_dir=tmp_path) as service:
        props = service.twins["default/thermostat"].properties
        assert props["mode"].expected is not None
        assert props["mode"].expected.value == "eco"
        assert props["temperature"].actual is not None
        assert props["temperature"].actual.value == "19.5"
        assert set(service.devices) == {"default/thermostat", "plant/boiler"}


async def test_devices_of_other_nodes_are_not_served(broker: BrokerAddress, tmp_path: Path) -> None:
    async with start_twin(broker, [SAMPLE_DEVICES], node="other-node", data_dir=tmp_path) as service:
        assert service.devices == {}
        async with mqtt_probe(broker, f"{DEV}/twin/get/result") as probe:
            body = await probe.request(f"{DEV}/twin/get", b"{}", f"{DEV}/twin/get/result")
        assert body["code"] == 404


async def test_a_device_left_out_of_the_manifests_is_kept_aside_with_a_log_line_and_comes_back(
    broker: BrokerAddress, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with (
        start_twin(broker, [SAMPLE_DEVICES], data_dir=tmp_path) as _,
        mqtt_probe(broker, f"{DEV}/twin/update/result") as probe,
    ):
        await probe.request(f"{DEV}/twin/update", desired("mode", "eco"), f"{DEV}/twin/update/result")
    fewer = load_manifests([SAMPLE_DEVICES])
    del fewer.devices["default/thermostat"]
    async with start_twin(broker, fewer, data_dir=tmp_path) as service:
        assert "default/thermostat" not in service.twins
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("default/thermostat" in w and "kept" in w for w in warnings), warnings
    assert (tmp_path / "removed" / "default__thermostat.json").exists()
    assert not (tmp_path / "twins" / "default__thermostat.json").exists()
    # The device comes back: so does its twin, desired value and all.
    async with start_twin(broker, [SAMPLE_DEVICES], data_dir=tmp_path) as service:
        expected = service.twins["default/thermostat"].properties["mode"].expected
        assert expected is not None and expected.value == "eco"
    assert not (tmp_path / "removed" / "default__thermostat.json").exists()
