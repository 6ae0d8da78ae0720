"""examples/led runs as a user runs it: ``edgetwin node ... --mappers gpio`` and ``led.py``, as processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.fixtures.brokers import Mosquitto
from tests.fixtures.processes import service
from twin.client import TwinClient

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "led"
EXAMPLE_DIR = "examples/led"  # as a user types it, from the repository


def led(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLE / "led.py"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )


async def test_the_led_example_switches_the_mock_led_and_the_twin_follows(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    url = mosquitto.address.url
    node_args = [
        "node",
        "edge-node-1",
        "--broker",
        url,
        "--data-dir",
        str(tmp_path),
        "--devices",
        "examples/led",
    ]
    with service(*node_args, "--mappers", "gpio", cwd=REPO) as node:
        node.wait_for("no GPIO hardware found: using gpiozero's mock pins")
        node.wait_for("default/led: online")

        result = led("on", "--broker", url)
        assert result.returncode == 0, result.stderr
        assert "led: power-status is ON (reported by the device" in result.stdout
        node.wait_for("default/led: power-status on GPIO18 is now ON (mock pin)")
        async with TwinClient(url) as twins:
            assert (await twins.get("led"))["power-status"].reported == "ON"

        result = led("toggle", "--broker", url)
        assert result.returncode == 0, result.stderr
        assert "power-status is OFF" in result.stdout
        async with TwinClient(url) as twins:
            state = (await twins.get("led"))["power-status"]
        assert (state.desired, state.reported) == ("OFF", "OFF")

        result = led("status", "--broker", url)
        assert result.stdout.strip() == "led: power-status is OFF (desired OFF)"
    assert sum("no GPIO hardware found" in line for line in node.lines) == 1


def test_the_led_example_without_a_mapper_says_what_to_start(mosquitto: Mosquitto, tmp_path: Path) -> None:
    url = mosquitto.address.url
    node_args = [
        "node",
        "edge-node-1",
        "--broker",
        url,
        "--data-dir",
        str(tmp_path),
        "--devices",
        "examples/led",
    ]
    with service(*node_args, cwd=REPO) as node:  # the twin alone: nothing drives the pin
        node.wait_for("node edge-node-1: twin service")
        result = led("on", "--broker", url, "--timeout", "0.5")
    assert result.returncode == 1
    assert "is the gpio mapper running" in result.stderr


def test_the_led_example_without_a_broker_fails_in_one_line() -> None:
    result = led("on", "--broker", "mqtt://127.0.0.1:1")
    assert result.returncode == 2
    assert result.stderr.startswith("led.py: error:") and len(result.stderr.strip().splitlines()) == 1
