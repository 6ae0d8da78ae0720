"""The sample BLE thermometer of ``crds/samples/ble.yaml``, on the simulated adapter of this process.

``serve_sample()`` adds it to ``mappers.ble.peripherals.ADAPTER`` and lets its temperature wander
(notifying subscribers) until cancelled; the mappers of the same process reach it through bleak
with ``adapter: simulated`` (the sample Device says so). Its GATT table, shaped like the common
Xiaomi-style hygrometers:

    service ebe0ccb0-7a0a-4b0c-8a1a-6ff2997da3a6
      ebe0ccc1-…  read, notify   5 bytes: temperature x 100 (int16, little-endian), humidity %
                                 (uint8), battery mV (uint16, little-endian)
      ebe0ccd8-…  read, write    1 byte: display on (01) / off (00)
    service 0000180f-… (Battery)
      00002a19-…  read           battery level %, one byte
"""

from __future__ import annotations

import asyncio
import logging
import math

from mappers.ble.peripherals import ADAPTER, SimulatedCharacteristic, SimulatedPeripheral, SimulatedService
from mappers.simulation import wander

__all__ = [
    "BATTERY_LEVEL",
    "DISPLAY",
    "READINGS",
    "SAMPLE_ADDRESS",
    "SAMPLE_NAME",
    "readings",
    "sample_peripheral",
    "serve_sample",
]

log = logging.getLogger(__name__)

SAMPLE_ADDRESS = "A4:C1:38:00:00:01"
SAMPLE_NAME = "ET-THERMO-01"
SERVICE = "ebe0ccb0-7a0a-4b0c-8a1a-6ff2997da3a6"
READINGS = "ebe0ccc1-7a0a-4b0c-8a1a-6ff2997da3a6"
DISPLAY = "ebe0ccd8-7a0a-4b0c-8a1a-6ff2997da3a6"
BATTERY_LEVEL = "00002a19-0000-1000-8000-00805f9b34fb"


def readings(temperature: float, humidity: int, battery_mv: int = 3000) -> bytes:
    """The readings characteristic's bytes."""
    return (
        round(temperature * 100).to_bytes(2, "little", signed=True)
        + humidity.to_bytes(1, "little")
        + battery_mv.to_bytes(2, "little")
    )


def sample_peripheral(address: str = SAMPLE_ADDRESS, name: str = SAMPLE_NAME) -> SimulatedPeripheral:
    """A fresh sample thermometer at 21.5 °C, 45 %, display on (not yet on the adapter)."""
    peripheral = SimulatedPeripheral(
        address,
        name,
        [
            SimulatedService(
                SERVICE,
                [
                    SimulatedCharacteristic(READINGS, ("read", "notify"), readings(21.5, 45)),
                    SimulatedCharacteristic(DISPLAY, ("read", "write"), b"\x01"),
                ],
            ),
            SimulatedService("180f", [SimulatedCharacteristic("2a19", ("read",), b"\x5c")]),
        ],
        advertised=[SERVICE],
    )

    def show(uuid: str, data: bytes) -> None:
        if uuid == DISPLAY:
            # What a person would see on the device: the only sign a desired value arrived.
            log.info("simulated BLE thermometer %s: display %s", address, "on" if any(data) else "off")

    peripheral.on_write = show
    return peripheral


async def serve_sample(
    *, drift: float = 1.0, address: str = SAMPLE_ADDRESS, ready: asyncio.Event | None = None
) -> None:
    """Serve the sample thermometer until cancelled; ``drift`` seconds between temperature changes."""
    peripheral = ADAPTER.add(sample_peripheral(address))
    log.info("simulated BLE thermometer %s (%s) on the simulated adapter", address, SAMPLE_NAME)

    def step(tick: int) -> None:
        # Wander around 21.5 °C and 45 %, so that a demo shows notified changes.
        temperature = 21.5 + round(math.sin(tick / 10), 2)
        humidity = 45 + round(3 * math.sin(tick / 17))
        peripheral.set(READINGS, readings(temperature, humidity))

    try:
        await wander(step, drift=drift, ready=ready)
    finally:
        ADAPTER.remove(peripheral)
