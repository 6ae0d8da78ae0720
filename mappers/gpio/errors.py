"""The GPIO mapper's own errors: leaves of ``twin.errors`` that name what went wrong with a pin.

Each reaches the user as the device's state reason (``unhealthy: red: PinInUse: GPIO25 is already
used by default/other-light (power-status)``) and in the log; the other pins and devices go on.
"""

from __future__ import annotations

from twin.errors import DeviceRefused, InvalidManifest, PermanentError, ReadOnlyProperty

__all__ = ["GpioUnavailable", "InputPinNotWritable", "NoSuchPin", "PinInUse"]


class PinInUse(DeviceRefused):
    """Another device of this mapper, another gpiozero user or another program holds the pin."""


class NoSuchPin(InvalidManifest):
    """The pin number or name does not exist on this board (GPIO 0-27 on a 40-pin Raspberry Pi)."""


class InputPinNotWritable(ReadOnlyProperty):
    """A desired value for a property whose pin is an input (a button, a sensor)."""


class GpioUnavailable(PermanentError):
    """The pin factory asked for cannot run here (no GPIO hardware, its library is not installed)."""
