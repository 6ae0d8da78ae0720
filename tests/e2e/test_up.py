"""`edgetwin up` as a new user runs it: the whole stack in a temporary home, then Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.brokers import Mosquitto
from tests.fixtures.processes import EDGETWIN, Service, run_cli
from tests.fixtures.tools import VENV_BIN, free_port
from twin.client import TwinClient

SIMULATED = ["ble-thermometer", "led-light", "modbus-thermostat", "opcua-boiler", "traffic-light"]


def _kubectl(kubeconfig: Path, *args: str) -> str:
    result = subprocess.run(
        [str(VENV_BIN / "kubectl"), "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.timeout(360)
async def test_up_runs_cloud_and_edge_with_every_protocol_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("mqtt", "cloud", "apiserver", "modbus", "opcua", "dashboard")}
    args = ["up", "--data-dir", str(tmp_path / "state")]
    for name, port in ports.items():
        args += [f"--{name}-port", str(port)]
    home = {**os.environ, "HOME": str(tmp_path)}
    stack = Service(args, cwd=tmp_path, env=home)
    try:
        assert "(6 new)" in stack.wait_for("applying the sample devices", timeout=120)
        stack.wait_for("all live", timeout=120)  # every simulated device reported through the cloud
        stack.wait_for("Ctrl-C stops everything")
        # The dashboard's address, with its token, serves the page.
        url = stack.wait_for("  dashboard ").split()[-1]
        assert url.startswith(f"http://127.0.0.1:{ports['dashboard']}/?token=")
        address, token = url.split("?token=")
        request = urllib.request.Request(address, headers={"Authorization": f"Bearer {token}"})
        page = await asyncio.to_thread(urllib.request.urlopen, request, timeout=10)
        assert page.status == 200 and b"edgetwin" in page.read()
        kubeconfig = tmp_path / "state" / "cloud" / "apiserver" / "kubeconfig"
        devices = json.loads(await asyncio.to_thread(_kubectl, kubeconfig, "get", "devices", "-o", "json"))
        by_name = {d["metadata"]["name"]: d for d in devices["items"]}
        for name in SIMULATED:
            status = by_name[name]["status"]
            assert status["state"] == "online", name
            assert any(t.get("reported", {}).get("value") for t in status["twins"]), name
        assert "Ready" in await asyncio.to_thread(_kubectl, kubeconfig, "get", "nodes")
        info = await asyncio.to_thread(_kubectl, kubeconfig, "cluster-info")
        assert info.startswith(
            f"Kubernetes control plane is running at https://127.0.0.1:{ports['apiserver']}"
        )
        broker = f"mqtt://127.0.0.1:{ports['mqtt']}"
        stack.wait_for("traffic light   cycling through its app")
        async with TwinClient(broker) as client, client.subscription("default/traffic-light") as lights:
            # The controller app moves the lights on its own: two different phases reported.
            phases: set[str] = set()
            while len(phases) < 2:
                event = await lights.get()
                lit = [name for name, prop in event.current.items() if prop.reported == "true"]
                phases.update(lit)
        async with TwinClient(broker) as client, client.subscription("default/led-light") as events:
            for name in SIMULATED:  # the same values through the node's MQTT
                assert any(p.reported for p in (await client.get(name)).values()), name
            # The LED toggled from kubectl reaches the device and comes back reported.
            patch = '[{"op":"replace","path":"/spec/properties/0/desired/value","value":"true"}]'
            await asyncio.to_thread(
                _kubectl, kubeconfig, "patch", "device", "led-light", "--type", "json", "-p", patch
            )
            state = await client.get("led-light")
            while state["power-status"].reported != "true":
                await events.get()
                state = await client.get("led-light")
        stack.proc.send_signal(signal.SIGINT)
        assert stack.proc.wait(timeout=60) == 0
        stack.wait_for("edgetwin stopped")
    finally:
        stack.stop()
    assert not any(_listening(port) for port in ports.values())

    # Run again: the same devices (none applied anew) and the LED still on, as it was left.
    again = Service(args, cwd=tmp_path, env=home)
    try:
        assert "(0 new)" in again.wait_for("applying the sample devices", timeout=120)
        again.wait_for("all live", timeout=120)
        again.wait_for("Ctrl-C stops everything")
        broker = f"mqtt://127.0.0.1:{ports['mqtt']}"
        async with TwinClient(broker) as client, client.subscription("default/led-light") as events:
            led = await client.get("led-light")
            assert led["power-status"].desired == "true"
            # The LED switched off from the terminal, as the quickstart shows.
            result = await asyncio.to_thread(
                run_cli, "twin", "set", "led-light", "power-status", "false", "--broker", broker
            )
            assert result.returncode == 0, result.stderr
            while led["power-status"].reported != "false":
                await events.get()
                led = await client.get("led-light")
        again.proc.send_signal(signal.SIGINT)
        assert again.proc.wait(timeout=60) == 0
    finally:
        again.stop()
    assert not any(_listening(port) for port in ports.values())
    pgrep = ["pgrep", "-f", str(tmp_path / "state")]
    leftover = await asyncio.to_thread(subprocess.run, pgrep, capture_output=True, text=True, check=False)
    assert leftover.stdout.strip() == "", "a process of the stack outlived `up`"


@pytest.mark.parametrize(
    "flag",
    ["--mqtt-port", "--cloud-port", "--apiserver-port", "--modbus-port", "--opcua-port", "--dashboard-port"],
)
def test_up_on_a_taken_port_names_the_flag_that_moves_it_and_leaves_nothing_behind(
    tmp_path: Path, flag: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        others = {
            f: str(free_port())
            for f in (
                "--mqtt-port",
                "--cloud-port",
                "--apiserver-port",
                "--modbus-port",
                "--opcua-port",
                "--dashboard-port",
            )
        }
        others[flag] = str(port)
        data = tmp_path / "state"
        result = run_cli("up", "--data-dir", str(data), *[x for kv in others.items() for x in kv])
    assert result.returncode != 0
    assert flag in result.stderr
    if flag == "--mqtt-port":
        assert f"--broker mqtt://127.0.0.1:{port}" in result.stderr
    assert not data.exists()  # a failed start leaves nothing half-made


def test_up_help_says_what_it_runs() -> None:
    result = subprocess.run([*EDGETWIN, "up", "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0
    assert "whole" in result.stdout.lower() or "everything" in result.stdout.lower()


@pytest.mark.timeout(240)
async def test_up_on_an_existing_cluster_and_broker_without_simulators(
    tmp_path: Path, apiserver_factory: Any, mosquitto: Mosquitto
) -> None:
    cluster = apiserver_factory()
    args = ["up", "--data-dir", str(tmp_path / "state"), "--no-simulators", "--no-dashboard"]
    args += ["--kubeconfig", str(cluster.kubeconfig), "--broker", mosquitto.address.url]
    args += ["--cloud-port", str(free_port())]
    stack = Service(args, cwd=tmp_path, env={**os.environ, "HOME": str(tmp_path)})
    try:
        # Only the GPIO samples (gpiozero's mock pins) come live without the simulators.
        live = stack.wait_for("all live", timeout=120)
        assert "led-light" in live and "traffic-light" in live and "modbus-thermostat" not in live
        assert str(cluster.kubeconfig.resolve()) in stack.wait_for("Kubernetes API")
        assert mosquitto.address.url in stack.wait_for("KubeEdge apps and mappers connect here")
        stack.wait_for("Ctrl-C stops everything")
        led = json.loads(
            await asyncio.to_thread(_kubectl, cluster.kubeconfig, "get", "device", "led-light", "-o", "json")
        )
        assert led["status"]["state"] == "online"
        assert "Ready" in await asyncio.to_thread(_kubectl, cluster.kubeconfig, "get", "nodes")
        async with TwinClient(mosquitto.address) as client:
            assert (await client.get("led-light"))["power-status"].reported == "false"
        stack.proc.send_signal(signal.SIGINT)
        assert stack.proc.wait(timeout=60) == 0
    finally:
        stack.stop()
    assert not (tmp_path / "state" / "cloud" / "apiserver").exists()  # no embedded API server
