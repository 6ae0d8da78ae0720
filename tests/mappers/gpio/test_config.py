"""GPIO configData: KubeEdge-ish keys, pin numbering, and the mode a property's type implies."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from mappers.gpio.config import GpioConfig, GpioVisitor, PinMode, pin_mode
from twin.errors import InvalidManifest
from twin.models import PropertyType

B, S, F = PropertyType.BOOLEAN, PropertyType.STRING, PropertyType.FLOAT
N = PropertyType.INT


def visitor(**data: Any) -> GpioVisitor:
    return GpioVisitor.model_validate(data)


def test_the_sample_keys_load() -> None:
    config = GpioConfig.model_validate({"pinNumbering": "bcm"})
    v = visitor(pin=17, activeHigh=True)
    assert config.pinNumbering == "BCM"
    assert v.pin_spec(config.pinNumbering) == 17


@pytest.mark.parametrize(
    ("data", "numbering", "spec"),
    [
        ({"pin": 11}, "BOARD", "BOARD11"),
        ({"pin": "17"}, "BCM", 17),
        ({"pinNumber": 18}, "BCM", 18),
        ({"gpioPinNumber": 18}, "BCM", 18),
        ({"pin": "GPIO22"}, "BOARD", "GPIO22"),
        ({"pin": "J8:11"}, "BCM", "J8:11"),
    ],
)
def test_pins_by_number_or_by_gpiozero_name(data: dict[str, Any], numbering: str, spec: int | str) -> None:
    assert visitor(**data).pin_spec(numbering) == spec


@pytest.mark.parametrize("data", [{}, {"pin": -1}, {"pin": ""}, {"pin": True}, {"pin": 5, "mode": "blink"}])
def test_a_visitor_without_a_usable_pin_or_mode_is_refused(data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        visitor(**data)


def test_an_unknown_pin_numbering_is_refused() -> None:
    with pytest.raises(ValidationError, match="pinNumbering"):
        GpioConfig.model_validate({"pinNumbering": "WIRINGPI"})


@pytest.mark.parametrize(
    ("ptype", "writable", "mode"),
    [
        (B, True, PinMode.OUTPUT),
        (S, True, PinMode.OUTPUT),
        (N, True, PinMode.OUTPUT),
        (F, True, PinMode.PWM),
        (PropertyType.DOUBLE, True, PinMode.PWM),
        (B, False, PinMode.INPUT),
        (F, False, PinMode.INPUT),
    ],
)
def test_the_mode_follows_the_type_and_access_mode(
    ptype: PropertyType, writable: bool, mode: PinMode
) -> None:
    assert pin_mode(visitor(pin=4), ptype, writable) is mode


def test_an_explicit_mode_wins() -> None:
    assert pin_mode(visitor(pin=4, mode="PWM"), N, True) is PinMode.PWM
    assert pin_mode(visitor(pin=4, mode="input"), B, True) is PinMode.INPUT


@pytest.mark.parametrize(("mode", "ptype"), [("pwm", B), ("pwm", S), ("output", PropertyType.BYTES)])
def test_a_type_that_cannot_hold_the_pins_values_is_a_manifest_error(mode: str, ptype: PropertyType) -> None:
    with pytest.raises(InvalidManifest, match=ptype.value):
        pin_mode(visitor(pin=4, mode=mode), ptype, True)
