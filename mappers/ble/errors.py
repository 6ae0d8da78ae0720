"""The BLE mapper's own leaves of the error tree (``twin.errors``), one per fault a user meets.

Each reaches the log and the device's state under its name::

    DeviceUnreachable
    ├── PeripheralNotFound       not advertising: out of range, switched off, wrong address
    └── ConnectionLost           it disconnected while connected (out of range, battery)
    PermanentError
    ├── CharacteristicNotFound   the device has no characteristic with the visitor's UUID
    ├── LayoutMismatch           the dataConverter's bytes are not in the data (endIndex too far)
    └── ReadOnlyProperty
        └── NotWritable          a write to a characteristic without the write property
"""

from __future__ import annotations

from twin.errors import DeviceUnreachable, PermanentError, ReadOnlyProperty

__all__ = ["CharacteristicNotFound", "ConnectionLost", "LayoutMismatch", "NotWritable", "PeripheralNotFound"]


class PeripheralNotFound(DeviceUnreachable):
    """No peripheral with this address (or advertised name) answers: out of range or switched off."""


class ConnectionLost(DeviceUnreachable):
    """The peripheral disconnected on its own; the runner reconnects with backoff."""


class CharacteristicNotFound(PermanentError):
    """The peripheral has no characteristic with the visitor's ``characteristicUUID``."""


class LayoutMismatch(PermanentError):
    """The visitor's byte layout does not fit the characteristic's data."""


class NotWritable(ReadOnlyProperty):
    """The characteristic has no write (or write-without-response) property."""
