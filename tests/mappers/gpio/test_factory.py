"""Choosing the pin factory: real pins on a Raspberry Pi, mock pins elsewhere, the user's word first."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from mappers.gpio.errors import GpioUnavailable
from mappers.gpio.factory import choose_factory, is_mock, is_raspberry_pi, pin_factory


@pytest.mark.parametrize(
    ("requested", "env", "on_pi", "chosen"),
    [
        ("", None, True, "real"),
        ("", None, False, "mock"),
        ("auto", "lgpio", False, "mock"),
        ("", "mock", True, "mock"),
        ("", "LGPIO", False, "lgpio"),
        ("rpigpio", "mock", False, "rpigpio"),
        ("mock", None, True, "mock"),
    ],
)
def test_the_device_setting_then_the_environment_then_the_board_decide(
    requested: str, env: str | None, on_pi: bool, chosen: str
) -> None:
    assert choose_factory(requested, env, on_pi=on_pi) == chosen


def test_a_raspberry_pi_is_known_by_its_device_tree(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.write_bytes(b"Raspberry Pi 4 Model B Rev 1.4\x00")
    assert is_raspberry_pi(model)
    model.write_bytes(b"Pine64 RockPro64\x00")
    assert not is_raspberry_pi(model)
    assert not is_raspberry_pi(tmp_path / "missing")


def test_auto_keeps_the_factory_the_process_already_set(mock_pins: Any) -> None:
    assert pin_factory() is mock_pins
    assert pin_factory("auto") is mock_pins
    assert pin_factory("mock") is mock_pins


def test_an_unknown_factory_is_a_named_error(mock_pins: Any) -> None:
    with pytest.raises(GpioUnavailable, match=r"no pin factory 'wiringpi' \(have: auto, lgpio, mock"):
        pin_factory("wiringpi")


def test_a_factory_whose_library_is_missing_is_a_named_error(mock_pins: Any) -> None:
    with pytest.raises(GpioUnavailable, match="pigpio pin factory cannot start"):
        pin_factory("pigpio")


def test_off_a_pi_auto_uses_mock_pins_and_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from gpiozero import Device

    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    monkeypatch.setattr(Device, "pin_factory", None)
    caplog.set_level(logging.INFO, "mappers.gpio")
    factory = pin_factory()
    try:
        assert is_mock(factory)
        assert Device.pin_factory is factory  # pins are shared by the whole process
        assert pin_factory() is factory
        assert caplog.text.count("no GPIO hardware found: using gpiozero's mock pins") == 1
    finally:
        factory.reset()
