"""The GPIO ``configData`` models, and which way a pin is used.

Device (``spec.protocol.configData``): ``pinNumbering`` (``BCM``, the GPIO numbers gpiozero and
most wiring diagrams use, or ``BOARD``, the physical header pins) and ``pinFactory`` (``auto``,
``mock``, or one of gpiozero's factories: ``lgpio``, ``rpigpio``, ``pigpio``, ``native``).

Property (``visitors.configData``): ``pin``; ``mode`` (``output``, ``pwm``, ``input``; by default
ReadOnly properties are inputs, FLOAT/DOUBLE ones PWM outputs, the rest on/off outputs);
``activeHigh``; for inputs ``pullUp`` and ``bounceTime``; for PWM ``frequency``.

KubeEdge's own LED and traffic-light demos keep the pin number in a DeviceModel property's
``defaultValue`` (``gpio-pin-number``) and have no visitor; v1beta1 visitors are where a pin
belongs, so ``pin`` (also ``pinNumber``) is the key here.
"""

from __future__ import annotations

import enum
from typing import Literal

from pydantic import AliasChoices, Field, field_validator

from mappers.plugin import PluginConfig
from twin.errors import InvalidManifest
from twin.models import PropertyType

__all__ = ["GpioConfig", "GpioVisitor", "PinMode", "pin_mode"]


class PinMode(enum.StrEnum):
    OUTPUT = "output"  # on/off: an LED, a relay
    PWM = "pwm"  # a duty cycle: an LED's brightness, a motor's speed
    INPUT = "input"  # a button, a motion sensor: pushed on every edge


class GpioConfig(PluginConfig):
    pinNumbering: Literal["BCM", "BOARD"] = "BCM"
    #: Empty: the ``GPIOZERO_PIN_FACTORY`` environment variable, else ``auto``.
    pinFactory: str = ""

    @field_validator("pinNumbering", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("pinFactory", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value


class GpioVisitor(PluginConfig):
    #: A GPIO number (BCM, or a header pin with ``pinNumbering: BOARD``), or a gpiozero pin name
    #: such as ``GPIO17``, ``BOARD11`` or ``J8:11``.
    pin: int | str = Field(validation_alias=AliasChoices("pin", "pinNumber", "gpioPinNumber"))
    mode: PinMode | None = None
    #: Output: the pin is high when the property is on (an LED from the pin to ground). Input with
    #: ``pullUp: null``: a high pin reads as on.
    activeHigh: bool = True
    #: Input: ``true`` pulls the pin up (a button to ground: pressed is on), ``false`` pulls it down
    #: (a button to 3.3 V), ``null`` leaves it floating (a sensor that drives the line).
    pullUp: bool | None = True
    #: Input: edges closer together than this (milliseconds) are one edge (a bouncing switch).
    bounceTime: float | None = Field(default=None, gt=0)
    #: PWM: the pulse frequency in Hz.
    frequency: float = Field(default=100.0, gt=0)

    @field_validator("pin", mode="before")
    @classmethod
    def _pin(cls, value: object) -> object:
        if isinstance(value, bool):
            raise ValueError("pin must be a GPIO number or a pin name such as GPIO17")  # noqa: TRY004 - pydantic reports ValueErrors
        if isinstance(value, str):
            text = value.strip()
            if text.isdigit():
                return int(text)
            if not text:
                raise ValueError("pin must not be empty")
            return text
        if isinstance(value, int) and value < 0:
            raise ValueError("pin must be 0 or more")
        return value

    @field_validator("mode", mode="before")
    @classmethod
    def _mode(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    def pin_spec(self, numbering: str) -> int | str:
        """The pin as gpiozero names it: ``BOARD11`` for header pin 11 with BOARD numbering."""
        if isinstance(self.pin, int) and numbering == "BOARD":
            return f"BOARD{self.pin}"
        return self.pin


_NUMERIC = (PropertyType.INT, PropertyType.FLOAT, PropertyType.DOUBLE)
_DIGITAL = (PropertyType.BOOLEAN, PropertyType.STRING, *_NUMERIC)


def pin_mode(visitor: GpioVisitor, ptype: PropertyType, writable: bool) -> PinMode:
    """The visitor's ``mode``, or the one the property's type and access mode imply.

    ``InvalidManifest`` when the type cannot carry the mode's values (a PWM duty cycle in a BOOLEAN).
    """
    mode = visitor.mode
    if mode is None:
        if not writable:
            mode = PinMode.INPUT
        elif ptype in (PropertyType.FLOAT, PropertyType.DOUBLE):
            mode = PinMode.PWM
        else:
            mode = PinMode.OUTPUT
    allowed = _NUMERIC if mode is PinMode.PWM else _DIGITAL
    if ptype not in allowed:
        pwm = mode is PinMode.PWM
        kinds = "an INT (percent), FLOAT or DOUBLE (0..1)" if pwm else "a BOOLEAN, STRING or number"
        raise InvalidManifest(f"a {mode.value} pin needs {kinds} property, not {ptype.value}")
    return mode
