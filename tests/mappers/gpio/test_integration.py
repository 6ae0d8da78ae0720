"""GPIO devices end to end on gpiozero's mock pins: pins <-> mapper runner <-> twin, over mosquitto."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.brokers import Mosquitto
from tests.mappers.builders import device, manifests, model
from tests.mappers.harness import Stack, mapper_stack, until
from twin.client import TwinClient

HOUR_MS = 3_600_000  # a collectCycle no test outlives: anything reported came without polling

PANEL = model(
    "panel-model",
    "gpio",
    {"led": "BOOLEAN", "lamp": "STRING", "dimmer": "FLOAT", "fan": "INT", "button": "BOOLEAN"},
    read_only=("button",),
)


def panel(name: str, visitors: dict[str, dict[str, Any]], **kw: Any) -> Any:
    return device(name, "panel-model", "gpio", {"pinNumbering": "BCM"}, visitors, **kw)


async def reported(stack: Stack, device_id: str, values: dict[str, str]) -> None:
    """Wait until the twin's documents have reported all ``values`` (in one document or several)."""
    seen: dict[str, str] = {}

    def match(body: dict[str, Any]) -> bool:
        for name, change in (body.get("twin") or {}).items():
            actual = ((change or {}).get("current") or {}).get("actual") or {}
            if "value" in actual:
                seen[name] = actual["value"]
        return all(seen.get(k) == v for k, v in values.items())

    await stack.wait(f"device/{device_id}/twin/update/document", match)


def state_of(stack: Stack, device_id: str) -> str:
    return stack.runner.workers[device_id].state


async def set_desired(stack: Stack, device_id: str, values: dict[str, str]) -> None:
    async with TwinClient(stack.broker) as twins:
        await twins.set_desired(device_id, values)


async def test_an_led_follows_its_desired_value(
    mock_pins: Any, mosquitto: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "mappers.gpio")
    defs = manifests(PANEL, panel("desk", {"led": {"pin": 17}}, collect_ms=HOUR_MS, desired={"led": "true"}))
    async with mapper_stack(mosquitto.address, defs, tmp_path) as stack:
        await stack.state("default/desk", "online")
        await stack.reported("default/desk", "led", "true")
        assert mock_pins.pin(17).state == 1
        assert "default/desk: led on GPIO17 is now ON (mock pin)" in caplog.text

        await set_desired(stack, "default/desk", {"led": "false"})
        await stack.reported("default/desk", "led", "false")
        assert mock_pins.pin(17).state == 0


async def test_kubeedge_demo_values_on_and_off_in_a_string_property(
    mock_pins: Any, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    defs = manifests(PANEL, panel("desk", {"lamp": {"pin": 18}}, desired={"lamp": "ON"}))
    async with mapper_stack(mosquitto.address, defs, tmp_path) as stack:
        await stack.reported("default/desk", "lamp", "ON")
        assert mock_pins.pin(18).state == 1
        await set_desired(stack, "default/desk", {"lamp": "OFF"})
        await stack.reported("default/desk", "lamp", "OFF")
        assert mock_pins.pin(18).state == 0


async def test_a_button_press_is_reported_without_polling(
    mock_pins: Any, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    defs = manifests(PANEL, panel("door", {"button": {"pin": 5, "bounceTime": 1}}, collect_ms=HOUR_MS))
    async with mapper_stack(mosquitto.address, defs, tmp_path) as stack:
        await stack.reported("default/door", "button", "false")
        mock_pins.pin(5).drive_low()
        await stack.reported("default/door", "button", "true")
        mock_pins.pin(5).drive_high()
        await stack.reported("default/door", "button", "false")


async def test_pwm_brightness_reaches_the_pin(mock_pins: Any, mosquitto: Mosquitto, tmp_path: Path) -> None:
    visitors = {"dimmer": {"pin": 12}, "fan": {"pin": 13, "mode": "pwm"}}
    defs = manifests(PANEL, panel("desk", visitors, desired={"dimmer": "0.5", "fan": "30"}))
    async with mapper_stack(mosquitto.address, defs, tmp_path) as stack:
        await reported(stack, "default/desk", {"dimmer": "0.5", "fan": "30"})
        assert mock_pins.pin(12).state == 0.5
        assert mock_pins.pin(13).state == 0.3

        await set_desired(stack, "default/desk", {"dimmer": "0.75"})
        await stack.reported("default/desk", "dimmer", "0.75")
        assert mock_pins.pin(12).state == 0.75


async def test_a_brightness_out_of_range_makes_the_device_unhealthy_and_leaves_the_pin(
    mock_pins: Any, mosquitto: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    defs = manifests(PANEL, panel("desk", {"dimmer": {"pin": 12}}, desired={"dimmer": "0.5"}))
    async with mapper_stack(mosquitto.address, defs, tmp_path) as stack:
        await stack.reported("default/desk", "dimmer", "0.5")
        await set_desired(stack, "default/desk", {"dimmer": "1.5"})
        await stack.state("default/desk", "unhealthy")
        assert "OutOfRange: 1.5 is outside 0..1" in caplog.text
        assert mock_pins.pin(12).state == 0.5
        await set_desired(stack, "default/desk", {"dimmer": "1"})
        await stack.state("default/desk", "online")
        assert mock_pins.pin(12).state == 1


async def test_two_devices_on_one_pin_one_is_refused_by_name_and_the_others_run(
    mock_pins: Any, mosquitto: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    defs = manifests(
        PANEL,
        panel("left", {"led": {"pin": 17}}),
        panel("right", {"led": {"pin": 17}}),
        panel("spare", {"led": {"pin": 22}}),
    )
    async with mapper_stack(mosquitto.address, defs, tmp_path) as stack:
        body = await stack.wait("/state/update", lambda b: b.get("state") == "unhealthy")
        assert body["state"] == "unhealthy"
        await until(lambda: "PinInUse: pin GPIO17 is already used by default/" in caplog.text)
        await set_desired(stack, "default/spare", {"led": "true"})
        await stack.reported("default/spare", "led", "true")
        assert mock_pins.pin(22).state == 1
        winner, loser = sorted(("left", "right"), key=lambda n: state_of(stack, f"default/{n}") != "online")
        assert state_of(stack, f"default/{winner}") == "online"
        assert state_of(stack, f"default/{loser}") == "unhealthy"
        why = f"unhealthy: led: PinInUse: pin GPIO17 is already used by default/{winner} (led)"
        assert f"default/{loser}: {why}" in caplog.text


async def test_a_pin_that_does_not_exist_fails_its_property_only(
    mock_pins: Any, mosquitto: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    defs = manifests(PANEL, panel("desk", {"led": {"pin": 99}, "lamp": {"pin": 17}}, desired={"lamp": "ON"}))
    async with mapper_stack(mosquitto.address, defs, tmp_path) as stack:
        await stack.reported("default/desk", "lamp", "ON")
        await until(lambda: state_of(stack, "default/desk") == "unhealthy")
        assert "led: NoSuchPin: this board has no pin GPIO99" in caplog.text


async def test_a_desired_value_for_an_input_pin_is_a_named_error(
    mock_pins: Any, mosquitto: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    visitors = {"led": {"pin": 5, "mode": "input"}, "lamp": {"pin": 17}}
    defs = manifests(PANEL, panel("door", visitors))
    async with mapper_stack(mosquitto.address, defs, tmp_path) as stack:
        await stack.state("default/door", "online")
        await set_desired(stack, "default/door", {"led": "true"})
        await stack.state("default/door", "unhealthy")
        assert "InputPinNotWritable: led is an input on GPIO5" in caplog.text
        await set_desired(stack, "default/door", {"lamp": "ON"})  # the device goes on working
        await stack.reported("default/door", "lamp", "ON")
        mock_pins.pin(5).drive_high()
        mock_pins.pin(5).drive_low()
        await stack.reported("default/door", "led", "true")
