"""``edgetwin discover opc.tcp://…``: the YAML it writes loads into the twin and is served unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from asyncua import ua

from mappers.discovery import DiscoverOptions
from mappers.opcua.discovery import discover
from mappers.opcua.simulator import OpcuaSimulator
from tests.fixtures.brokers import Mosquitto
from tests.fixtures.tools import free_port
from tests.mappers.harness import mapper_stack
from tests.mappers.opcua.helpers import edgetwin, holds
from twin.manifests import load_manifests

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_a_discovered_device_served_unchanged_reports_its_values(
    opcua_sim: OpcuaSimulator, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    await opcua_sim.add_variable("Serial Number", "SN-0042", ua.VariantType.String)
    await opcua_sim.set("Temperature", 33.5)
    await opcua_sim.set("Valve", True)
    lines: list[str] = []
    found = await discover(opcua_sim.url, DiscoverOptions(name="boiler-7"), lines.append)
    assert any("variable(s) so far" in line for line in lines)
    file = tmp_path / "boiler.yaml"
    file.write_text(found.to_yaml())

    defs = load_manifests([file])
    device = defs.devices["default/boiler-7"]
    model = defs.models[device.model_key]
    props = {p.name: p for p in model.spec.properties}
    assert props["Temperature"].type.value == "DOUBLE"
    assert props["Temperature"].accessMode.value == "ReadOnly"
    assert props["Valve"].type.value == "BOOLEAN"
    assert props["Valve"].accessMode.value == "ReadWrite"  # the server grants CurrentWrite
    assert props["PressureLimit"].type.value == "FLOAT"
    assert props["BurnerStarts"].type.value == "INT"
    assert "Serial-Number" in props  # a valid twin key: no spaces
    visitors = {p.name: p.visitors.configData for p in device.spec.properties if p.visitors}
    assert visitors["Temperature"] == {"nodeID": "ns=2;s=Boiler.Temperature"}
    assert visitors["Serial-Number"] == {"nodeID": "ns=2;s=Boiler.Serial Number"}
    assert all(p.reportToCloud for p in device.spec.properties)  # the cloud link mirrors them
    assert "''" not in file.read_text()  # no empty defaults written out

    async with mapper_stack(mosquitto.address, defs, tmp_path / "node") as stack:
        await stack.state("default/boiler-7", "online")
        await holds(stack, "default/boiler-7", "Temperature", "33.5")
        await holds(stack, "default/boiler-7", "Valve", "true")
        await holds(stack, "default/boiler-7", "Serial-Number", "SN-0042")
        await holds(stack, "default/boiler-7", "Model", "EB-200")


async def test_discovery_from_a_root_given_as_a_browse_path_or_a_node_id(opcua_sim: OpcuaSimulator) -> None:
    by_path = await discover(opcua_sim.url, DiscoverOptions(root="/0:Objects/2:Boiler"), lambda _: None)
    by_id = await discover(opcua_sim.url, DiscoverOptions(root="ns=2;s=Boiler"), lambda _: None)
    assert [p.name for p in by_path.models[0].spec.properties] == [
        p.name for p in by_id.models[0].spec.properties
    ]
    assert "Temperature" in [p.name for p in by_id.models[0].spec.properties]
    assert by_id.devices[0].metadata.name == "boiler"  # from the endpoint's path


async def test_the_command_writes_yaml_and_shows_progress(opcua_sim: OpcuaSimulator, tmp_path: Path) -> None:
    out = tmp_path / "found.yaml"
    log = await edgetwin(
        "discover", opcua_sim.url, "--name", "boiler-9", "--node", "edge-node-2", "-o", str(out)
    )
    assert "browsed" in log and "wrote 1 DeviceModel(s) and 1 Device(s)" in log
    docs = list(yaml.safe_load_all(out.read_text()))
    assert [d["kind"] for d in docs] == ["DeviceModel", "Device"]
    assert docs[1]["spec"]["nodeName"] == "edge-node-2"
    assert load_manifests([out]).devices["default/boiler-9"]


async def test_an_unreachable_endpoint_is_one_clear_line_and_a_failing_exit() -> None:
    url = f"opc.tcp://127.0.0.1:{free_port()}/nobody/"
    out = await edgetwin("discover", url, "--timeout", "1", expect=1)
    assert f"cannot browse {url}: connection refused" in out
    assert "Traceback" not in out
