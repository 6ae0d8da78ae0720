"""Replies pinned against KubeEdge's DeviceTwin (edge/pkg/devicetwin), case by case.

Each test names what KubeEdge does; where edgetwin answers differently on purpose, the test pins
edgetwin's answer and docs/twin.md ("Differences from KubeEdge") gives the reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from edgemqtt.client import BrokerAddress
from tests.fixtures.mqtt import MqttProbe, mqtt_probe
from tests.fixtures.twin import SAMPLE_DEVICES, start_twin
from twin.manifests import load_manifests
from twin.service import TwinService

DEV = "$hw/events/device/default/thermostat"
NODE = "$hw/events/node/edge-node-1"


async def _request(
    probe: MqttProbe, topic: str, payload: bytes | dict[str, Any], reply: str
) -> dict[str, Any]:
    return await probe.request(topic, payload if isinstance(payload, bytes) else orjson.dumps(payload), reply)


async def test_an_empty_twin_map_succeeds_with_no_document_and_a_delta_if_one_is_pending(
    twin_service: TwinService, broker: BrokerAddress
) -> None:
    # KubeEdge: {"twin":{}} -> success result {"twin":{}}, no document, delta while any is pending.
    async with mqtt_probe(broker, f"{DEV}/twin/update/+") as probe:
        await probe.send(f"{DEV}/twin/update", {"event_id": "e", "twin": {}})
        topic, result = await probe.next_json()
        assert (topic, result["event_id"], result["twin"]) == (f"{DEV}/twin/update/result", "e", {})
        topic, delta = await probe.next_json()
        assert topic == f"{DEV}/twin/update/delta"  # target's desired 20 from the manifest is pending
        assert delta["delta"] == {"target": "20"}


@pytest.mark.parametrize(
    "twin", [{"mode": None}, {"mode": {}}, {"mode": {"metadata": {"type": "Updated"}}}], ids=str
)
async def test_deleting_a_declared_property_or_sending_it_empty_changes_nothing(
    twin_service: TwinService, broker: BrokerAddress, twin: dict[str, Any]
) -> None:
    # KubeEdge ignores null for a non-optional twin, and a twin with neither expected nor actual.
    async with mqtt_probe(broker, f"{DEV}/twin/update/result") as probe:
        result = await _request(probe, f"{DEV}/twin/update", {"twin": twin}, f"{DEV}/twin/update/result")
    assert "code" not in result and result["twin"] == {}
    assert "mode" in twin_service.twins["default/thermostat"].properties


async def test_a_malformed_body_for_an_unknown_device_is_a_400_not_a_404(
    twin_service: TwinService, broker: BrokerAddress
) -> None:
    ghost = "$hw/events/device/default/ghost"
    async with mqtt_probe(broker, f"{ghost}/twin/update/result") as probe:
        bad = await _request(probe, f"{ghost}/twin/update", b"{", f"{ghost}/twin/update/result")
        good = await _request(
            probe, f"{ghost}/twin/update", {"event_id": "g", "twin": {}}, f"{ghost}/twin/update/result"
        )
    assert bad["code"] == 400
    assert (good["code"], good["event_id"]) == (404, "g")


async def test_values_sent_as_json_numbers_are_read_as_their_text(
    twin_service: TwinService, broker: BrokerAddress
) -> None:
    # KubeEdge refuses the whole body; the published LED example app sends ints, so edgetwin takes them.
    body = {"twin": {"target": {"expected": {"value": 22}}, "power": {"actual": {"value": True}}}}
    async with mqtt_probe(broker, f"{DEV}/twin/update/result") as probe:
        result = await _request(probe, f"{DEV}/twin/update", body, f"{DEV}/twin/update/result")
    assert result["twin"]["target"]["expected"]["value"] == "22"
    assert result["twin"]["power"]["actual"]["value"] == "true"


async def test_delta_and_state_results_carry_a_new_event_id_and_results_the_request_s(
    twin_service: TwinService, broker: BrokerAddress
) -> None:
    async with mqtt_probe(broker, f"{DEV}/twin/update/+", f"{DEV}/state/update/result") as probe:
        await probe.send(
            f"{DEV}/twin/update", {"event_id": "req-1", "twin": {"target": {"expected": {"value": "21"}}}}
        )
        bodies = {
            topic.rsplit("/", 1)[1]: body for topic, body in [await probe.next_json() for _ in range(3)]
        }
        state = await _request(
            probe,
            f"{DEV}/state/update",
            {"event_id": "req-2", "state": "offline"},
            f"{DEV}/state/update/result",
        )
    assert bodies["result"]["event_id"] == bodies["document"]["event_id"] == "req-1"
    assert bodies["delta"]["event_id"] not in ("", "req-1")
    assert state["event_id"] not in ("", "req-2")


async def test_delta_lists_every_property_with_a_desired_value_not_only_the_pending_ones(
    twin_service: TwinService, broker: BrokerAddress
) -> None:
    async with mqtt_probe(broker, f"{DEV}/twin/update/+") as probe:
        await probe.request(
            f"{DEV}/twin/update",
            orjson.dumps(
                {"twin": {"mode": {"expected": {"value": "eco"}}, "target": {"actual": {"value": "20"}}}}
            ),
            f"{DEV}/twin/update/result",
        )
        await probe.send(f"{DEV}/twin/update", {"twin": {"power": {"expected": {"value": "true"}}}})
        while True:
            topic, delta = await probe.next_json()
            if topic.endswith("/delta") and "power" in delta["delta"]:
                break
    assert delta["delta"] == {"mode": "eco", "power": "true"}
    assert set(delta["twin"]) == {"target", "mode", "power"}  # target reached its desired 20, still listed


async def test_state_result_has_no_last_online_time_until_the_device_was_online(
    twin_service: TwinService, broker: BrokerAddress
) -> None:
    topic = f"{DEV}/state/update"
    async with mqtt_probe(broker, f"{topic}/result") as probe:
        offline = await _request(probe, topic, {"state": "offline"}, f"{topic}/result")
        online = await _request(probe, topic, {"State": "Online"}, f"{topic}/result")
        offline_again = await _request(probe, topic, {"state": "OFFLINE"}, f"{topic}/result")
    assert offline["device"] == {"name": "thermostat", "state": "offline"}
    assert online["device"]["state"] == "online"  # stored in lower case (KubeEdge keeps the case sent)
    stamp = online["device"]["lastOnlineTime"]
    assert stamp.endswith("Z") and "T" in stamp
    # KubeEdge clears lastOnlineTime when a device goes offline; edgetwin keeps when it was last online.
    assert offline_again["device"]["lastOnlineTime"] == stamp


async def test_the_1_18_state_disconnected_is_accepted(
    twin_service: TwinService, broker: BrokerAddress
) -> None:
    async with mqtt_probe(broker, f"{DEV}/state/update/result") as probe:
        body = await _request(
            probe, f"{DEV}/state/update", {"state": "disconnected"}, f"{DEV}/state/update/result"
        )
    assert body["device"]["state"] == "disconnected"


async def test_membership_entries_take_the_description_label_and_leave_out_empty_fields(
    broker: BrokerAddress, tmp_path: Path
) -> None:
    manifests = load_manifests([SAMPLE_DEVICES])
    boiler = manifests.devices["plant/boiler"]
    labels = {**boiler.metadata.labels, "description": "boiler-in-hall-2"}
    manifests.devices["plant/boiler"] = boiler.model_copy(
        update={"metadata": boiler.metadata.model_copy(update={"labels": labels})}
    )
    async with start_twin(broker, manifests, data_dir=tmp_path), mqtt_probe(broker) as probe:
        await probe.subscribe(f"{NODE}/membership/get/result")
        body = await _request(
            probe, f"{NODE}/membership/get", {"event_id": "m"}, f"{NODE}/membership/get/result"
        )
    entries = {entry["id"]: entry for entry in body["devices"]}
    assert entries["plant/boiler"]["description"] == "boiler-in-hall-2"
    assert "description" not in entries["default/thermostat"]
    assert "last_online" not in entries["default/thermostat"]  # never reported
    assert entries["default/thermostat"]["state"] == "unknown"
    assert body["event_id"] == "m"


async def test_cloud_updated_from_an_example_app_reports_values(
    twin_service: TwinService, broker: BrokerAddress
) -> None:
    # KubeEdge's example apps publish unversioned actual values on twin/cloud_updated; KubeEdge
    # never stores them. edgetwin takes them as reported values, answered on twin/update/result.
    body = {
        "event_id": "",
        "timestamp": 0,
        "twin": {"temperature": {"actual": {"value": "23.5"}, "metadata": {"type": "Updated"}}},
    }
    async with mqtt_probe(broker, f"{DEV}/twin/update/result") as probe:
        result = await _request(probe, f"{DEV}/twin/cloud_updated", body, f"{DEV}/twin/update/result")
    assert result["twin"]["temperature"]["actual"]["value"] == "23.5"


async def test_cloud_updated_with_versions_follows_the_cloud_rules(
    twin_service: TwinService, broker: BrokerAddress
) -> None:
    def write(value: str, cloud: int, edge: int) -> dict[str, Any]:
        return {
            "twin": {
                "target": {"expected": {"value": value}, "expected_version": {"cloud": cloud, "edge": edge}}
            }
        }

    async with mqtt_probe(broker, f"{DEV}/twin/update/result") as probe:
        accepted = await _request(
            probe, f"{DEV}/twin/cloud_updated", write("25", 2, 0), f"{DEV}/twin/update/result"
        )
        stale = await _request(
            probe, f"{DEV}/twin/cloud_updated", write("26", 2, 0), f"{DEV}/twin/update/result"
        )
        await _request(
            probe,
            f"{DEV}/twin/update",
            {"twin": {"target": {"expected": {"value": "27"}}}},
            f"{DEV}/twin/update/result",
        )
        lost = await _request(
            probe, f"{DEV}/twin/cloud_updated", write("28", 2, 0), f"{DEV}/twin/update/result"
        )
        newer = await _request(
            probe, f"{DEV}/twin/cloud_updated", write("29", 3, 0), f"{DEV}/twin/update/result"
        )
    assert accepted["twin"]["target"]["expected"]["value"] == "25"
    assert stale["twin"] == {}
    assert lost["code"] == 409  # the same cloud version as stored, behind the local write
    # A newer cloud version wins over the local write (the cluster is the source of truth).
    assert newer["twin"]["target"]["expected"]["value"] == "29"
    assert newer["twin"]["target"]["expected_version"] == {"cloud": 3, "edge": 1}


async def test_get_and_membership_requests_with_an_empty_body_are_answered(
    twin_service: TwinService, broker: BrokerAddress
) -> None:
    # KubeEdge answers 400; `mosquitto_pub -n` is how people try a twin, so edgetwin answers.
    async with mqtt_probe(broker, f"{DEV}/twin/get/result", f"{NODE}/membership/get/result") as probe:
        twin = await _request(probe, f"{DEV}/twin/get", b"", f"{DEV}/twin/get/result")
        members = await _request(probe, f"{NODE}/membership/get", b"", f"{NODE}/membership/get/result")
    assert twin["event_id"] == "" and "target" in twin["twin"]
    assert {m["id"] for m in members["devices"]} == {"default/thermostat", "plant/boiler"}
