"""The GPIO samples of crds/samples on mock pins: what ``make run`` shows on a laptop."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.fixtures.brokers import Mosquitto
from tests.mappers.harness import mapper_stack, until
from twin.client import TwinClient
from twin.manifests import load_manifests

SAMPLES = Path(__file__).resolve().parents[3] / "crds" / "samples"


async def test_the_led_and_traffic_light_samples_drive_their_pins(
    mock_pins: Any, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    defs = load_manifests([SAMPLES / "gpio-led.yaml", SAMPLES / "traffic-light.yaml"])
    async with mapper_stack(mosquitto.address, defs, tmp_path, protocols=["gpio"]) as stack:
        twin = stack.twin.twins
        await until(
            lambda: (
                twin["default/traffic-light"].state == "online"
                and twin["default/led-light"].state == "online"
            )
        )
        # KubeEdge's traffic-light pins: red GPIO25 (desired on), yellow GPIO24, green GPIO23.
        await until(lambda: mock_pins.pin(25).state == 1)
        assert (mock_pins.pin(24).state, mock_pins.pin(23).state) == (0, 0)
        async with TwinClient(stack.broker) as twins:
            await twins.set_desired("led-light", {"power-status": "true"})
            await until(lambda: mock_pins.pin(17).state == 1)
        await stack.reported("default/led-light", "power-status", "true")
