"""The command line as a new user meets it: real processes, real brokers, real exit codes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from edgemqtt.client import BrokerAddress
from tests.fixtures.brokers import Mosquitto
from tests.fixtures.mqtt import mqtt_probe
from tests.fixtures.processes import EDGETWIN, run_cli, service
from tests.fixtures.tools import free_port
from tests.fixtures.twin import SAMPLE_DEVICES


def test_help_lists_the_commands() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("up", "node", "broker", "twin"):
        assert command in result.stdout


def test_node_with_invalid_yaml_exits_non_zero_naming_the_file(tmp_path: Path, mosquitto: Mosquitto) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: devices.kubeedge.io/v1beta1\nkind: Device\nmetadata: {name: x}\nspec: {}\n")
    result = run_cli(
        "node",
        "n1",
        "--broker",
        mosquitto.address.url,
        "--data-dir",
        str(tmp_path / "d"),
        "--devices",
        str(bad),
    )
    assert result.returncode == 2
    assert str(bad) in result.stderr
    assert "spec.deviceModelRef" in result.stderr


def test_twin_get_without_a_twin_service_says_so(mosquitto: Mosquitto) -> None:
    result = run_cli(
        "twin", "get", "thermostat", "--broker", mosquitto.address.url, "--timeout", "0.5", "--wait", "0"
    )
    assert result.returncode != 0
    assert "is the twin service running" in result.stderr


def test_twin_get_without_a_broker_says_so() -> None:
    result = run_cli(
        "twin", "get", "thermostat", "--broker", f"mqtt://127.0.0.1:{free_port()}", "--wait", "0"
    )
    assert result.returncode != 0
    assert "cannot connect to MQTT broker" in result.stderr


def test_get_set_and_watch_through_the_command_line(tmp_path: Path, mosquitto: Mosquitto) -> None:
    url = mosquitto.address.url
    with service(
        "node", "edge-node-1", "--broker", url, "--data-dir", str(tmp_path), "--devices", str(SAMPLE_DEVICES)
    ) as node:
        node.wait_for("twin service for 2 devices")
        with service("twin", "watch", "thermostat", "--broker", url, "--count", "2") as watcher:
            watcher.wait_for("watching default/thermostat")
            result = run_cli("twin", "set", "thermostat", "target", "23", "--broker", url)
            assert result.returncode == 0, result.stderr
            assert "target desired = 23" in result.stdout
            document = watcher.wait_for("document  default/thermostat")
            delta = watcher.wait_for("delta     default/thermostat")
            assert "target: desired=23 reported=-" in document
            assert "target=23" in delta
            watcher.proc.wait(timeout=10)
            assert watcher.proc.returncode == 0
        result = run_cli("twin", "get", "default/thermostat", "--broker", url)
        assert result.returncode == 0, result.stderr
        row = next(line for line in result.stdout.splitlines() if line.startswith("target"))
        assert row.split()[:4] == ["target", "23", "-", "int"]
        refused = run_cli("twin", "set", "thermostat", "target", "hot", "--broker", url)
        assert refused.returncode == 2
        assert "'hot' is not an integer" in refused.stderr


async def test_broker_command_serves_kubeedge_topics() -> None:
    port = free_port()
    with service("broker", "--port", str(port)) as broker:
        broker.wait_for("embedded MQTT broker on mqtt://127.0.0.1:")
        address = BrokerAddress("127.0.0.1", port)
        async with mqtt_probe(address, "$hw/events/device/+/twin/update") as probe:
            await probe.send("$hw/events/device/led/twin/update", b'{"twin": {}}')
            message = await probe.next()
    assert message.topic == "$hw/events/device/led/twin/update"


def test_python_dash_m_runs_the_same_command() -> None:
    result = subprocess.run([*EDGETWIN, "twin", "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0
    assert "watch" in result.stdout


def test_watching_an_unknown_device_says_so_instead_of_waiting(tmp_path: Path, mosquitto: Mosquitto) -> None:
    url = mosquitto.address.url
    with service(
        "node", "edge-node-1", "--broker", url, "--data-dir", str(tmp_path), "--devices", str(SAMPLE_DEVICES)
    ) as node:
        node.wait_for("twin service for 2 devices")
        result = run_cli("twin", "watch", "nosuch", "--broker", url)
    assert result.returncode == 2
    assert "default/nosuch is not known on node edge-node-1" in result.stderr


def test_node_option_checks_the_device_belongs_to_that_node(tmp_path: Path, mosquitto: Mosquitto) -> None:
    url = mosquitto.address.url
    with service(
        "node", "edge-node-1", "--broker", url, "--data-dir", str(tmp_path), "--devices", str(SAMPLE_DEVICES)
    ) as node:
        node.wait_for("twin service for 2 devices")
        mine = run_cli("twin", "get", "thermostat", "--node", "edge-node-1", "--broker", url)
        other = run_cli(
            "twin",
            "set",
            "thermostat",
            "target",
            "21",
            "--node",
            "edge-node-1x",
            "--broker",
            url,
            "--timeout",
            "1",
        )
    assert mine.returncode == 0, mine.stderr
    assert other.returncode != 0
    assert "edge-node-1x" in other.stderr


def test_a_get_sent_before_the_stack_is_up_waits_for_it(tmp_path: Path) -> None:
    port = free_port()
    url = f"mqtt://127.0.0.1:{port}"
    with service("twin", "get", "thermostat", "--broker", url, "--wait", "60") as early:
        early.wait_for("waiting for the MQTT broker")
        with service("broker", "--port", str(port)) as broker:
            broker.wait_for("embedded MQTT broker on")
            early.wait_for("waiting for a twin service")
            args = ["node", "edge-node-1", "--broker", url, "--data-dir", str(tmp_path)]
            with service(*args, "--devices", str(SAMPLE_DEVICES)) as node:
                node.wait_for("twin service for 2 devices")
                early.wait_for("default/thermostat: unknown")
                early.wait_for("target")
                assert early.proc.wait(timeout=30) == 0


def test_list_shows_every_device_of_every_node_with_state_and_values(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    url = mosquitto.address.url
    args = [
        "node",
        "edge-node-1",
        "--broker",
        url,
        "--data-dir",
        str(tmp_path),
        "--devices",
        str(SAMPLE_DEVICES),
    ]
    with service(*args) as node:
        node.wait_for("twin service for 2 devices")
        run_cli("twin", "set", "thermostat", "mode", "eco", "--broker", url)
        result = run_cli("twin", "list", "--broker", url)
        as_json = run_cli("twin", "list", "--broker", url, "--json", "--node", "edge-node-1")
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["NODE", "DEVICE", "STATE", "PROPERTY", "DESIRED", "REPORTED"]
    assert any(r.split()[:5] == ["edge-node-1", "default/thermostat", "unknown", "mode", "eco"] for r in rows)
    devices = {d["device"]: d for d in json.loads(as_json.stdout)}
    assert devices["plant/boiler"]["node"] == "edge-node-1"
    assert devices["default/thermostat"]["properties"]["mode"]["desired"] == "eco"
