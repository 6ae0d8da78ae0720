"""The GPIO plugin on gpiozero's mock pins, without a broker: pins, values, errors, edges."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from mappers.bus import Buses
from mappers.gpio.errors import GpioUnavailable, InputPinNotWritable, NoSuchPin, PinInUse
from mappers.gpio.plugin import GpioMapper
from mappers.plugin import MappedDevice
from tests.mappers.builders import device, mapped, model
from twin.errors import DeviceRefused, OutOfRange, TypeMismatch

TYPES = {"led": "BOOLEAN", "lamp": "STRING", "dimmer": "FLOAT", "fan": "INT", "button": "BOOLEAN"}


def board(
    name: str, visitors: dict[str, dict[str, Any]], config: dict[str, Any] | None = None
) -> MappedDevice[Any, Any]:
    types = {prop: TYPES.get(prop, "BOOLEAN") for prop in visitors}
    return mapped(
        device(name, f"{name}-model", "gpio", config or {}, visitors),
        model(f"{name}-model", "gpio", types, read_only=("button",)),
        GpioMapper,
    )


def prop(dev: MappedDevice[Any, Any], name: str) -> Any:
    found = dev.property(name)
    assert found is not None
    return found


async def test_an_output_drives_its_pin_and_reads_back(mock_pins: Any) -> None:
    dev = board("desk", {"led": {"pin": 17}, "lamp": {"pin": 27, "activeHigh": False}})
    async with GpioMapper(dev, Buses()) as mapper:
        assert await mapper.read(prop(dev, "led")) is False
        await mapper.write(prop(dev, "led"), True)
        assert mock_pins.pin(17).state == 1
        assert await mapper.read(prop(dev, "led")) is True

        await mapper.write(prop(dev, "lamp"), "on")
        assert mock_pins.pin(27).state == 0  # active low: on pulls the pin down
        assert await mapper.read(prop(dev, "lamp")) == "on"  # spelled as it was asked
        await mapper.write(prop(dev, "lamp"), "OFF")
        assert mock_pins.pin(27).state == 1
        assert await mapper.read(prop(dev, "lamp")) == "OFF"
    assert mock_pins.pin(17).function == "input"  # closing gives the pins back


async def test_board_numbering_names_header_pins(mock_pins: Any) -> None:
    dev = board("desk", {"led": {"pin": 11}}, {"pinNumbering": "BOARD"})
    async with GpioMapper(dev, Buses()) as mapper:
        await mapper.write(prop(dev, "led"), True)
        assert mock_pins.pin(17).state == 1  # header pin 11 is GPIO17


async def test_pwm_as_a_fraction_and_as_a_percentage(mock_pins: Any) -> None:
    dev = board("desk", {"dimmer": {"pin": 12}, "fan": {"pin": 13, "mode": "pwm", "frequency": 25000}})
    async with GpioMapper(dev, Buses()) as mapper:
        await mapper.write(prop(dev, "dimmer"), 0.25)
        await mapper.write(prop(dev, "fan"), 40)
        assert mock_pins.pin(12).state == 0.25
        assert mock_pins.pin(13).state == 0.4
        assert mock_pins.pin(13).frequency == 25000
        assert await mapper.read(prop(dev, "dimmer")) == 0.25
        assert await mapper.read(prop(dev, "fan")) == 40
        with pytest.raises(OutOfRange):
            await mapper.write(prop(dev, "dimmer"), 1.5)
        assert mock_pins.pin(12).state == 0.25  # nothing half-written


async def test_a_button_is_pushed_on_each_edge(mock_pins: Any) -> None:
    dev = board("door", {"button": {"pin": 5}, "led": {"pin": 6}})
    async with GpioMapper(dev, Buses()) as mapper:
        button = prop(dev, "button")
        assert mapper.pushes(button) and mapper.pushes(prop(dev, "led"))
        assert await mapper.read(button) is False
        edges = mapper.watch([button])
        mock_pins.pin(5).drive_low()  # pressed: the pull-up is shorted to ground
        mock_pins.pin(5).drive_high()
        assert await asyncio.wait_for(anext(edges), 5) == ("button", True)
        assert await asyncio.wait_for(anext(edges), 5) == ("button", False)
        await edges.aclose()


async def test_an_edge_from_gpiozeros_own_thread_reaches_the_loop(mock_pins: Any) -> None:
    dev = board("door", {"button": {"pin": 5}})
    async with GpioMapper(dev, Buses()) as mapper:
        edges = mapper.watch([prop(dev, "button")])
        await asyncio.to_thread(mock_pins.pin(5).drive_low)
        assert await asyncio.wait_for(anext(edges), 5) == ("button", True)
        await edges.aclose()


async def test_a_desired_value_for_an_input_is_refused_by_name(mock_pins: Any) -> None:
    dev = board("door", {"led": {"pin": 5, "mode": "input"}})
    async with GpioMapper(dev, Buses()) as mapper:
        with pytest.raises(InputPinNotWritable, match="an input on GPIO5"):
            await mapper.write(prop(dev, "led"), True)


async def test_a_word_that_is_not_on_or_off_is_refused(mock_pins: Any) -> None:
    dev = board("desk", {"lamp": {"pin": 17}})
    async with GpioMapper(dev, Buses()) as mapper:
        with pytest.raises(TypeMismatch):
            await mapper.write(prop(dev, "lamp"), "dim")


async def test_two_devices_on_one_pin_the_second_is_told_who_holds_it(mock_pins: Any) -> None:
    first = board("left", {"led": {"pin": 17}})
    second = board("right", {"led": {"pin": 17}, "lamp": {"pin": 22}})
    async with GpioMapper(first, Buses()) as a, GpioMapper(second, Buses()) as b:
        assert not b.pushes(prop(second, "led"))  # not open: polled, and tried again each time
        with pytest.raises(PinInUse, match=r"GPIO17 is already used by default/left \(led\)"):
            await b.read(prop(second, "led"))
        with pytest.raises(PinInUse):
            await b.write(prop(second, "led"), True)
        await b.write(prop(second, "lamp"), "ON")  # the device's other pin works
        assert mock_pins.pin(22).state == 1
        await a.write(prop(first, "led"), True)
    assert mock_pins.pin(17).state == 0


async def test_a_pin_freed_later_is_taken_at_the_next_read(
    mock_pins: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from gpiozero import LED

    other = LED(26)  # another gpiozero user in this process
    dev = board("desk", {"led": {"pin": 26}})
    caplog.set_level(logging.INFO, "mappers.gpio")
    async with GpioMapper(dev, Buses()) as mapper:
        with pytest.raises(PinInUse, match="another gpiozero device"):
            await mapper.read(prop(dev, "led"))
        other.close()
        assert await mapper.read(prop(dev, "led")) is False
        assert "led: GPIO26 is open now" in caplog.text


async def test_a_pin_the_board_does_not_have_is_named(mock_pins: Any) -> None:
    dev = board("desk", {"led": {"pin": 99}, "lamp": {"pin": 17}})
    async with GpioMapper(dev, Buses()) as mapper:
        with pytest.raises(NoSuchPin, match="no pin GPIO99"):
            await mapper.read(prop(dev, "led"))
        assert await mapper.read(prop(dev, "lamp")) == "OFF"


async def test_pwm_on_a_factory_without_pwm_is_refused(mock_pins: Any) -> None:
    from gpiozero import Device
    from gpiozero.pins.mock import MockFactory

    Device.pin_factory = MockFactory()  # plain mock pins: no PWM (restored by the fixture)
    dev = board("desk", {"dimmer": {"pin": 12}})
    async with GpioMapper(dev, Buses()) as mapper:
        with pytest.raises(DeviceRefused, match="cannot do PWM"):
            await mapper.read(prop(dev, "dimmer"))


async def test_a_pin_factory_that_cannot_start_fails_the_device_by_name(mock_pins: Any) -> None:
    dev = board("desk", {"led": {"pin": 17}}, {"pinFactory": "pigpio"})  # no pigpio daemon here
    with pytest.raises(GpioUnavailable, match="pigpio pin factory cannot start"):
        async with GpioMapper(dev, Buses()):
            pass
