"""The simulated devices behind the ``virtual`` mapper: property values held in memory.

A real plugin talks to hardware through a protocol library; the virtual one talks to this store,
which tests and demos drive directly (``simulated("default/thermo").set("temp", 22.0)``), including
failures: a device that does not answer, or one that refuses a write.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from twin.values import Value

__all__ = ["SimulatedDevice", "forget_all", "simulated"]


@dataclass
class SimulatedDevice:
    values: dict[str, Value] = field(default_factory=dict)
    #: When set, the device does not answer (reads and writes raise ``DeviceUnreachable``).
    unreachable: bool = False
    #: Property name -> reason: the device refuses writes to it.
    refuse: dict[str, str] = field(default_factory=dict)
    writes: list[tuple[str, Value]] = field(default_factory=list)
    reads: int = 0

    def set(self, name: str, value: Value) -> None:
        self.values[name] = value


_devices: dict[str, SimulatedDevice] = {}


def simulated(device_id: str) -> SimulatedDevice:
    """The simulated device with this id (``namespace/name``), created on first use."""
    device = _devices.get(device_id)
    if device is None:
        device = _devices[device_id] = SimulatedDevice()
    return device


def forget_all() -> None:
    _devices.clear()
