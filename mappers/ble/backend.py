"""Which bleak backend an adapter name means: the system's, a named BlueZ adapter, or the simulator.

bleak picks its platform backend by itself (BlueZ over D-Bus on Linux, CoreBluetooth on macOS,
WinRT on Windows) and takes another through ``BleakClient(..., backend=Cls)`` and
``BleakScanner(..., backend=Cls)``. edgetwin passes its simulated classes only for the adapter
name ``simulated`` (``mappers.ble.simulator``); any other name is a BlueZ adapter (``hci1``), and
no name leaves bleak's choice unchanged. The code under test is bleak's public API either way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bleak import BleakScanner
from bleak.args.bluez import BlueZClientArgs, BlueZScannerArgs
from bleak.backends.client import BaseBleakClient
from bleak.backends.scanner import BaseBleakScanner

__all__ = ["SIMULATED", "Backend", "backend_for"]

#: The adapter name that selects the simulated peripherals of ``mappers.ble.simulator``.
SIMULATED = "simulated"


@dataclass(frozen=True)
class Backend:
    adapter: str  # "" for the system's default adapter
    client: type[BaseBleakClient] | None = None  # None: bleak's platform backend
    scanner: type[BaseBleakScanner] | None = None
    bluez: BlueZClientArgs = field(default_factory=BlueZClientArgs)
    bluez_scan: BlueZScannerArgs = field(default_factory=BlueZScannerArgs)

    @property
    def simulated(self) -> bool:
        return self.adapter == SIMULATED

    def scan_args(self) -> BleakScanner.ExtraArgs:
        """Keyword arguments of ``BleakScanner`` and its ``find_device_by_*`` for this adapter."""
        args: BleakScanner.ExtraArgs = {"bluez": self.bluez_scan}
        if self.scanner is not None:
            args["backend"] = self.scanner
        return args

    def describe(self) -> str:
        return f"adapter {self.adapter}" if self.adapter else "the default adapter"


def backend_for(adapter: str) -> Backend:
    name = adapter.strip()
    if name.lower() == SIMULATED:
        from mappers.ble.simulator import SimulatedClient, SimulatedScanner

        return Backend(SIMULATED, SimulatedClient, SimulatedScanner)
    if not name or name.lower() == "default":
        return Backend("")
    return Backend(name, bluez=BlueZClientArgs(adapter=name), bluez_scan=BlueZScannerArgs(adapter=name))
