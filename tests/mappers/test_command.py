"""``edgetwin mapper``: list, run, and a new plugin package installed with pip as a user would."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures.brokers import Mosquitto
from tests.fixtures.mqtt import mqtt_probe
from tests.fixtures.tools import free_port
from tests.fixtures.twin import start_twin
from tests.mappers.builders import device, manifests, model

BIN = Path(sys.executable).parent
EDGETWIN = BIN / "edgetwin"


def edgetwin(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(EDGETWIN), *args], capture_output=True, text=True, timeout=60, env=env, check=False
    )


def test_mapper_list_shows_the_built_in_plugins_and_their_distribution() -> None:
    result = edgetwin("mapper", "list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["PROTOCOL", "DISTRIBUTION", "TARGET", "STATUS"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert "edgetwin 0.1.0" in rows["modbus"] and rows["modbus"].endswith("ok")
    assert "mappers.virtual:VirtualMapper" in rows["virtual"]
    assert "mappers.gpio.plugin:GpioMapper" in rows["gpio"] and rows["gpio"].endswith("ok")


def test_mapper_run_of_a_protocol_nobody_installed_fails_with_a_clear_message() -> None:
    result = edgetwin("mapper", "run", "canbus", "--broker", "mqtt://127.0.0.1:1")
    assert result.returncode == 2
    assert "no mapper plugin for protocol 'canbus' is installed (have: " in result.stderr
    have = result.stderr.split("(have: ", 1)[1].split(")", 1)[0].split(", ")
    assert {"ble", "gpio", "modbus", "virtual"} <= set(have)


def test_mapper_new_refuses_a_name_that_cannot_be_a_package(tmp_path: Path) -> None:
    result = edgetwin("mapper", "new", "My-Bus", "--dir", str(tmp_path))
    assert result.returncode == 2
    assert "not a usable protocol name" in result.stderr
    assert "did you mean 'my-bus'?" in result.stderr
    for bad in ("my--bus", "bus-", "9bus", "my.bus"):
        assert edgetwin("mapper", "new", bad, "--dir", str(tmp_path)).returncode == 2, bad
    assert list(tmp_path.iterdir()) == []


def test_mapper_new_takes_a_kubeedge_style_dashed_name(tmp_path: Path) -> None:
    result = edgetwin("mapper", "new", "my-bus", "--dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    package = tmp_path / "edgetwin-mapper-my-bus"
    assert 'my-bus = "edgetwin_mapper_my_bus:MyBusMapper"' in (package / "pyproject.toml").read_text()
    assert 'protocol = "my-bus"' in (package / "src" / "edgetwin_mapper_my_bus" / "__init__.py").read_text()
    assert "protocolName: my-bus" in (package / "examples" / "device.yaml").read_text()
    assert (package / "tests" / "test_my_bus.py").is_file()
    # A plugin author's own lint passes on what they start from.
    for check in (["check"], ["format", "--check"]):
        lint = subprocess.run(
            [str(BIN / "ruff"), *check, "."], cwd=package, capture_output=True, text=True, check=False
        )
        assert lint.returncode == 0, lint.stdout + lint.stderr


@dataclass
class Plugin:
    package: Path
    env: dict[str, str]


@pytest.fixture(scope="module")
def acme_plugin(tmp_path_factory: pytest.TempPathFactory) -> Plugin:
    """``edgetwin mapper new acme``, then ``pip install`` of the result (once for this module)."""
    root = tmp_path_factory.mktemp("plugin")
    created = edgetwin("mapper", "new", "acme", "--dir", str(root))
    assert created.returncode == 0, created.stderr
    package = root / "edgetwin-mapper-acme"
    site = root / "site"
    # Installed the way a user installs any plugin, into a folder on the path instead of the shared venv.
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(package)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert install.returncode == 0, install.stderr
    return Plugin(package, {**os.environ, "PYTHONPATH": str(site)})


def test_new_plugin_installed_with_pip_is_listed_and_its_own_tests_pass(acme_plugin: Plugin) -> None:
    listed = edgetwin("mapper", "list", env=acme_plugin.env)
    assert "edgetwin-mapper-acme 0.1.0" in listed.stdout
    assert "edgetwin_mapper_acme:AcmeMapper" in listed.stdout

    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=acme_plugin.package,
        env=acme_plugin.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "3 passed" in tests.stdout


async def test_new_plugin_installed_with_pip_serves_its_devices(
    acme_plugin: Plugin, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    env = acme_plugin.env
    defs = manifests(
        model("gauge-model", "acme", {"level": "INT"}),
        device("gauge", "gauge-model", "acme", {"host": "127.0.0.1"}, {"level": {"initial": "7"}}),
    )
    broker = mosquitto.address
    async with (
        start_twin(broker, defs, data_dir=tmp_path / "twin"),
        mqtt_probe(broker, "$hw/events/device/default/gauge/twin/update/document") as probe,
    ):
        proc = await asyncio.create_subprocess_exec(
            str(EDGETWIN),
            "mapper",
            "run",
            "acme",
            "--node",
            "edge-node-1",
            "--broker",
            broker.url,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            _, body = await probe.next_json(timeout=20)
            assert body["twin"]["level"]["current"]["actual"]["value"] == "7"
        finally:
            proc.send_signal(signal.SIGINT)
            out, _ = await asyncio.wait_for(proc.communicate(), 20)
    assert "serving device default/gauge with the acme mapper" in out.decode()


async def test_new_plugin_runs_its_sample_device_as_its_readme_says(
    acme_plugin: Plugin, tmp_path: Path
) -> None:
    """The README's commands: a node with its own broker, the sample device, the plugin; get, set."""
    broker = f"mqtt://127.0.0.1:{free_port()}"
    examples = acme_plugin.package / "examples"
    node = await asyncio.create_subprocess_exec(
        *(str(EDGETWIN), "node", "edge-node-1", "--serve-broker", "--broker", broker),
        *("--data-dir", str(tmp_path / "node"), "--devices", str(examples), "--mappers", "acme"),
        env=acme_plugin.env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        got = await asyncio.to_thread(edgetwin, "twin", "get", "demo-acme", "--broker", broker, "--json")
        assert got.returncode == 0, got.stderr
        assert json.loads(got.stdout)["properties"]["level"]["desired"] == "7"
        watch = await asyncio.create_subprocess_exec(
            *(str(EDGETWIN), "twin", "watch", "demo-acme", "--broker", broker, "--json"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            assert watch.stderr is not None  # "watching ..." once it is subscribed
            assert b"watching" in await asyncio.wait_for(watch.stderr.readline(), 30)
            written = await asyncio.to_thread(
                edgetwin, "twin", "set", "demo-acme", "level", "9", "--broker", broker
            )
            assert written.returncode == 0, written.stderr
            assert watch.stdout is not None
            async with asyncio.timeout(20):
                while True:
                    event = json.loads(await watch.stdout.readline())
                    level = event.get("twin", {}).get("level", {})
                    if level.get("current", {}).get("actual", {}).get("value") == "9":
                        break
        finally:
            watch.send_signal(signal.SIGINT)
            await watch.wait()
    finally:
        node.send_signal(signal.SIGINT)
        out, _ = await asyncio.wait_for(node.communicate(), 30)
    assert node.returncode == 130, out.decode()  # ended by Ctrl-C, as a shell reports it
    assert "serving device default/demo-acme with the acme mapper" in out.decode()
