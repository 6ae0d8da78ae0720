"""Which gpiozero pin factory drives the pins: the real one on a Raspberry Pi, mock pins elsewhere.

Pins are shared by the whole process: two devices on GPIO17 must collide, whatever mapper instance
asks. So the factory is process-wide (gpiozero's ``Device.pin_factory``) and chosen once:

1. the device's ``configData.pinFactory``, else the ``GPIOZERO_PIN_FACTORY`` environment variable,
   else ``auto``;
2. ``auto`` keeps a factory the process already set (an app embedding edgetwin, a test); otherwise,
   on a Raspberry Pi (``/proc/device-tree/model``), the first of gpiozero's factories that starts
   (lgpio, rpigpio, pigpio, native), and anywhere else gpiozero's mock pins;
3. ``mock`` is gpiozero's ``MockFactory`` with PWM-capable pins, so brightness works on a laptop.

The choice is logged once, and loudly for mock pins, so that nobody waits for a real LED to light.
"""

from __future__ import annotations

import logging
import os
import warnings
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockPWMPin

from mappers.gpio.errors import GpioUnavailable

__all__ = ["choose_factory", "is_mock", "is_raspberry_pi", "pin_factory"]

log = logging.getLogger(__name__)

#: gpiozero's own order of preference on a Raspberry Pi (``Device._default_pin_factory``).
REAL_FACTORIES = ("lgpio", "rpigpio", "pigpio", "native")
_MODEL_FILE = Path("/proc/device-tree/model")
_ENTRY_POINTS = "gpiozero_pin_factories"

_factories: dict[str, Any] = {}  # factory name -> the one instance of this process
_announced: set[int] = set()  # ids of the factories already named in the log


def is_raspberry_pi(model_file: Path = _MODEL_FILE) -> bool:
    """Whether the device tree says this board is a Raspberry Pi."""
    try:
        return "raspberry pi" in model_file.read_text(encoding="utf-8", errors="replace").lower()
    except OSError:
        return False


def choose_factory(requested: str, env: str | None, *, on_pi: bool) -> str:
    """The factory to use: ``mock``, ``real`` (the first of ``REAL_FACTORIES`` that starts) or a name."""
    name = (requested or (env or "").strip().lower() or "auto").lower()
    if name == "auto":
        return "real" if on_pi else "mock"
    return name


def is_mock(factory: object) -> bool:
    return isinstance(factory, MockFactory)


def pin_factory(requested: str = "") -> Any:
    """The process's pin factory for a device's ``pinFactory``; ``GpioUnavailable`` if it cannot start."""
    env = os.environ.get("GPIOZERO_PIN_FACTORY")
    asked = requested or (env or "").strip().lower() or "auto"
    current = Device.pin_factory
    if current is not None and (asked == "auto" or (asked == "mock" and is_mock(current))):
        _announce(current, asked, made=False)
        return current
    name = choose_factory(requested, env, on_pi=is_raspberry_pi())
    factory = _factories.get(name)
    if factory is None:
        factory = _factories[name] = _make(name)
    if current is None:
        # gpiozero devices made elsewhere in this process now share these pins.
        Device.pin_factory = factory
    _announce(factory, asked, made=True)
    return factory


def _make(name: str) -> Any:
    if name == "mock":
        return MockFactory(pin_class=MockPWMPin)
    if name == "real":
        failures = []
        for candidate in REAL_FACTORIES:
            try:
                return _load(candidate)
            except GpioUnavailable as exc:
                failures.append(str(exc))
        raise GpioUnavailable("no GPIO pin factory starts on this Raspberry Pi: " + "; ".join(failures))
    return _load(name)


def _load(name: str) -> Any:
    found = {ep.name: ep for ep in entry_points(group=_ENTRY_POINTS)}
    ep = found.get(name)
    if ep is None:
        raise GpioUnavailable(
            f"gpiozero has no pin factory {name!r} (have: auto, {', '.join(sorted(found))})"
        )
    try:
        with warnings.catch_warnings():
            # gpiozero warns about fallbacks it would make; we report our own choice instead.
            warnings.simplefilter("ignore")
            return ep.load()()
    except Exception as exc:  # a factory's library (lgpio, RPi.GPIO...) fails in its own ways
        raise GpioUnavailable(
            f"gpiozero's {name} pin factory cannot start: {type(exc).__name__}: {exc}"
        ) from exc


def _announce(factory: object, asked: str, *, made: bool) -> None:
    if id(factory) in _announced:
        return
    _announced.add(id(factory))
    if not is_mock(factory):
        log.info("GPIO: using gpiozero's %s pin factory", type(factory).__name__)
    elif made and asked == "auto":
        log.warning(
            "no GPIO hardware found: using gpiozero's mock pins (nothing is wired; pin changes are "
            "logged and reported). On a Raspberry Pi the real pins are used; set "
            "GPIOZERO_PIN_FACTORY or configData.pinFactory to choose."
        )
    else:
        why = f"pinFactory {asked}" if made else "set up by this process"
        log.warning("GPIO: using gpiozero's mock pins (%s): nothing is wired", why)
