"""The one place that talks gpiozero: a pin opened as an output, a PWM output or an input.

Each wraps one gpiozero device and translates its errors once: a pin someone else holds is
``PinInUse`` (naming the device and property of this process that holds it, when it is one of
ours), a pin the board does not have is ``NoSuchPin``. gpiozero calls input callbacks in its own
threads (or, for mock pins, in whatever thread drives the pin); ``InputPin.listen`` hands each edge
to a plain callable, which the plugin turns into ``loop.call_soon_threadsafe``.

gpiozero's calls are register or ioctl writes that take microseconds, so they are made directly from
the event loop: a hop to a worker thread would cost more than the call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from gpiozero import DigitalInputDevice, DigitalOutputDevice, PWMOutputDevice
from gpiozero.exc import GPIOPinInUse, PinInvalidPin, PinPWMError

from mappers.gpio.config import GpioVisitor, PinMode
from mappers.gpio.errors import NoSuchPin, PinInUse
from twin.errors import DeviceRefused

__all__ = ["GpioPin", "InputPin", "OutputPin", "PwmPin", "open_pin"]

log = logging.getLogger(__name__)

# Who holds each pin this process opened: pin object id -> "namespace/device (property)".
_owners: dict[int, str] = {}


class GpioPin:
    """One opened pin; ``close`` gives it back (to this process and to other programs)."""

    mode: PinMode

    def __init__(self, device: Any, owner: str) -> None:
        self._device = device
        self.name = str(device.pin)  # "GPIO17", whatever numbering the visitor used
        _owners[id(device.pin)] = owner

    def close(self) -> None:
        pin = self._device.pin
        if pin is not None:
            _owners.pop(id(pin), None)
        try:
            self._device.close()
        except Exception as exc:  # noqa: BLE001 - closing must not raise; the pin is released either way
            log.debug("closing %s: %s", self.name, exc)


class OutputPin(GpioPin):
    mode = PinMode.OUTPUT

    @property
    def level(self) -> bool:
        return bool(self._device.value)

    def set(self, level: bool) -> None:
        self._device.value = level


class PwmPin(GpioPin):
    mode = PinMode.PWM

    @property
    def duty(self) -> float:
        return float(self._device.value)

    def set(self, duty: float) -> None:
        self._device.value = duty


class InputPin(GpioPin):
    mode = PinMode.INPUT

    @property
    def level(self) -> bool:
        return bool(self._device.is_active)

    def listen(self, edge: Callable[[bool], None]) -> None:
        """Call ``edge(True)`` when the input becomes active and ``edge(False)`` when it stops."""
        self._device.when_activated = lambda: edge(True)
        self._device.when_deactivated = lambda: edge(False)

    def close(self) -> None:
        try:
            self._device.when_activated = None
            self._device.when_deactivated = None
        except Exception as exc:  # noqa: BLE001 - a closed device refuses; closing goes on
            log.debug("unhooking %s: %s", self.name, exc)
        super().close()


def open_pin(factory: Any, spec: int | str, mode: PinMode, visitor: GpioVisitor, owner: str) -> GpioPin:
    """Open ``spec`` (``17``, ``"BOARD11"``) for ``owner``; ``PinInUse``/``NoSuchPin``/``DeviceRefused``."""
    try:
        match mode:
            case PinMode.OUTPUT:
                return OutputPin(
                    DigitalOutputDevice(
                        spec, active_high=visitor.activeHigh, initial_value=False, pin_factory=factory
                    ),
                    owner,
                )
            case PinMode.PWM:
                return PwmPin(
                    PWMOutputDevice(
                        spec,
                        active_high=visitor.activeHigh,
                        initial_value=0,
                        frequency=visitor.frequency,
                        pin_factory=factory,
                    ),
                    owner,
                )
            case PinMode.INPUT:
                bounce = visitor.bounceTime / 1000 if visitor.bounceTime else None
                return InputPin(
                    DigitalInputDevice(
                        spec,
                        pull_up=visitor.pullUp,
                        active_state=visitor.activeHigh if visitor.pullUp is None else None,
                        bounce_time=bounce,
                        pin_factory=factory,
                    ),
                    owner,
                )
    except GPIOPinInUse as exc:
        raise PinInUse(f"pin {_label(spec)} is already used by {_holder(factory, spec)}") from exc
    except PinInvalidPin as exc:
        raise NoSuchPin(f"this board has no pin {_label(spec)} ({exc})") from exc
    except PinPWMError as exc:
        raise DeviceRefused(f"pin {_label(spec)} cannot do PWM with this pin factory: {exc}") from exc
    except Exception as exc:  # the boundary: lgpio, RPi.GPIO and pigpio raise their own types
        if "busy" in str(exc).lower():
            raise PinInUse(f"pin {_label(spec)} is held by another program ({exc})") from exc
        raise DeviceRefused(f"pin {_label(spec)}: {type(exc).__name__}: {exc}") from exc
    raise AssertionError(mode)  # every PinMode is handled above


def _label(spec: int | str) -> str:
    return f"GPIO{spec}" if isinstance(spec, int) else spec


def _holder(factory: Any, spec: int | str) -> str:
    try:
        pin = factory.pin(spec)
    except Exception:  # noqa: BLE001 - only for the message
        pin = None
    owner = _owners.get(id(pin)) if pin is not None else None
    return owner or "another gpiozero device in this process"
