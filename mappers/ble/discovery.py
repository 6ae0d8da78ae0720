"""``edgetwin discover ble``: scan for BLE peripherals, or turn one's GATT table into YAML.

Without an address it scans for ``timeout`` seconds, reports each peripheral as it appears, and
lists them (address, name, signal, advertised services) as YAML comments with the command that
describes one: a Device per advertiser would bury the one sensor in every phone and TV nearby.
With ``--address`` (a MAC address, or an advertised name) it connects, lists the services and
characteristics, and writes a DeviceModel and a Device: one property per characteristic that can
be read or notifies, its visitor naming the characteristic UUID. Characteristics of the Bluetooth
SIG that it knows (battery level, temperature, humidity, device information strings) get their
type and byte layout; the others are raw ``BYTES`` (hex) to refine by hand.

The adapter is chosen as for devices: ``EDGETWIN_BLE_ADAPTER`` (``simulated`` scans the simulated
peripherals of this process), else the system's default adapter.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from bleak import BleakClient, BleakScanner
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakError

from mappers.ble.backend import Backend, backend_for
from mappers.ble.config import default_adapter, looks_like_address
from mappers.ble.errors import PeripheralNotFound
from mappers.ble.link import translate
from mappers.discovery import Discovered, DiscoverOptions, Progress, manifest_name
from twin.models import Device, DeviceModel

__all__ = ["discover"]

#: Generic Access and Generic Attribute: every peripheral has them, no sensor reading lives there.
_SKIPPED_SERVICES = frozenset(
    {"00001800-0000-1000-8000-00805f9b34fb", "00001801-0000-1000-8000-00805f9b34fb"}
)
_SIG = "-0000-1000-8000-00805f9b34fb"
_POLL_MS = 10_000


@dataclass(frozen=True)
class _Known:
    type: str
    converter: dict[str, Any] | None = None
    unit: str = ""


# Bluetooth SIG characteristics whose format is fixed (GATT Specification Supplement).
_KNOWN: dict[str, _Known] = {
    "2a19": _Known("INT", {"startIndex": 0, "endIndex": 0}, "percent"),
    "2a6e": _Known(
        "FLOAT",
        {"startIndex": 0, "endIndex": 1, "byteOrder": "little", "signed": True, "scale": 0.01},
        "celsius",
    ),
    "2a6f": _Known(
        "FLOAT", {"startIndex": 0, "endIndex": 1, "byteOrder": "little", "scale": 0.01}, "percent"
    ),
    "2a6d": _Known("FLOAT", {"startIndex": 0, "endIndex": 3, "byteOrder": "little", "scale": 0.1}, "pascal"),
    **{short: _Known("STRING") for short in ("2a00", "2a24", "2a25", "2a26", "2a27", "2a28", "2a29")},
}


def _known(uuid: str) -> _Known | None:
    if uuid.startswith("0000") and uuid.endswith(_SIG):
        return _KNOWN.get(uuid[4:8])
    return None


async def discover(target: str, options: DiscoverOptions, progress: Progress) -> Discovered:
    backend = backend_for(default_adapter())
    if options.address:
        return await _describe(options.address.strip(), backend, options, progress)
    return await _scan(backend, options, progress)


async def _scan(backend: Backend, options: DiscoverOptions, progress: Progress) -> Discovered:
    seen: dict[str, tuple[BLEDevice, AdvertisementData]] = {}

    def detected(device: BLEDevice, advertisement: AdvertisementData) -> None:
        if device.address not in seen:
            name = advertisement.local_name or device.name or "(no name)"
            progress(f"found {device.address} {name} ({advertisement.rssi} dBm)")
        seen[device.address] = (device, advertisement)

    progress(f"scanning for BLE devices on {backend.describe()} for {options.timeout:g}s...")
    try:
        async with BleakScanner(detected, **backend.scan_args()):
            await asyncio.sleep(options.timeout)
    except (BleakError, OSError) as exc:
        raise translate(exc, "scanning for BLE devices") from exc
    notes = [f"BLE devices advertising on {backend.describe()} within {options.timeout:g}s: {len(seen)}"]
    for device, adv in sorted(seen.values(), key=lambda item: -item[1].rssi):
        services = f"  services {', '.join(adv.service_uuids)}" if adv.service_uuids else ""
        notes.append(
            f"  {device.address}  {adv.local_name or device.name or '(no name)'}  {adv.rssi} dBm{services}"
        )
    if seen:
        notes.append("List one's characteristics as a DeviceModel and a Device:")
        notes.append("  edgetwin discover ble --address ADDRESS [--name DEVICE] > device.yaml")
    elif backend.simulated:
        notes.append(
            "The simulated adapter has no peripherals in this process: they live in the process "
            "that serves them (edgetwin up, or mappers.ble.sample.serve_sample)."
        )
    else:
        notes.append("None found: is the sensor on and near, and Bluetooth on? Try a longer --timeout.")
    return Discovered(notes=tuple(notes))


async def _find(address: str, backend: Backend, timeout: float) -> BLEDevice:
    try:
        if looks_like_address(address):
            found = await BleakScanner.find_device_by_address(address, timeout=timeout, **backend.scan_args())
        else:
            found = await BleakScanner.find_device_by_name(address, timeout=timeout, **backend.scan_args())
    except (BleakError, OSError) as exc:
        raise translate(exc, f"scanning for {address}") from exc
    if found is None:
        raise PeripheralNotFound(
            f"{address} did not advertise within {timeout:g}s on {backend.describe()} "
            "(out of range, switched off, or connected to another central)"
        )
    return found


@dataclass(frozen=True)
class _Entry:
    service: str
    char: BleakGATTCharacteristic
    value: bytes | None


async def _describe(
    address: str, backend: Backend, options: DiscoverOptions, progress: Progress
) -> Discovered:
    progress(f"looking for {address} on {backend.describe()} (up to {options.timeout:g}s)...")
    device = await _find(address, backend, options.timeout)
    progress(f"connecting to {device.address} ({device.name or 'no name'})...")
    entries: list[_Entry] = []
    try:
        async with BleakClient(
            device, timeout=options.timeout, backend=backend.client, bluez=backend.bluez
        ) as client:
            for service in sorted(client.services, key=lambda s: s.handle):
                if service.uuid in _SKIPPED_SERVICES:
                    continue
                for char in sorted(service.characteristics, key=lambda c: c.handle):
                    value = None
                    if "read" in char.properties:
                        try:
                            value = bytes(await client.read_gatt_char(char))
                        except BleakError as exc:
                            progress(f"  {char.uuid}: could not be read ({exc})")
                    entries.append(_Entry(service.uuid, char, value))
                    progress(f"  {char.uuid} {_describe_char(char)}: {', '.join(char.properties)}")
    except (BleakError, OSError, TimeoutError) as exc:
        raise translate(exc, f"listing the characteristics of {device.address}") from exc
    return _manifests(device, entries, backend, options)


def _manifests(
    device: BLEDevice, entries: list[_Entry], backend: Backend, options: DiscoverOptions
) -> Discovered:
    name = options.name or manifest_name(device.name or device.address, fallback="ble-device")
    model_name = f"{name}-model"
    notes = [f"BLE device {device.address} ({device.name or 'no name'}) on {backend.describe()}"]
    model_props: list[dict[str, Any]] = []
    device_props: list[dict[str, Any]] = []
    used: set[str] = set()
    for entry in entries:
        char, caps = entry.char, set(entry.char.properties)
        writable = bool(caps & {"write", "write-without-response"})
        if not caps & {"read", "notify", "indicate"}:
            if writable:
                notes.append(f"write-only characteristic {char.uuid} ({_describe_char(char)}) left out")
            continue
        prop_name = _unique(_property_name(char), used)
        known = _known(char.uuid)
        read = (
            f"; read {len(entry.value)} byte(s): {entry.value.hex() or '(empty)'}"
            if entry.value is not None
            else ""
        )
        model_props.append(
            {
                "name": prop_name,
                "description": f"{_describe_char(char)} {char.uuid} ({', '.join(char.properties)}){read}",
                "type": known.type if known else "BYTES",
                "accessMode": "ReadWrite" if writable else "ReadOnly",
                **({"unit": known.unit} if known and known.unit else {}),
            }
        )
        visitor: dict[str, Any] = {"characteristicUUID": char.uuid}
        if known and known.converter:
            visitor["dataConverter"] = dict(known.converter)
        notifies = bool(caps & {"notify", "indicate"})
        device_props.append(
            {
                "name": prop_name,
                **({} if notifies else {"collectCycle": _POLL_MS}),
                "reportToCloud": True,
                "visitors": {"protocolName": "ble", "configData": visitor},
            }
        )
    notes.append(
        f"{len(device_props)} propert{'y' if len(device_props) == 1 else 'ies'}: characteristics that "
        "can be read or notify. Unknown ones are raw BYTES (hex); give them a type and a "
        "visitors.configData.dataConverter to decode them (docs/mappers.md, BLE)."
    )
    config: dict[str, Any] = (
        {"macAddress": device.address} if looks_like_address(device.address) else {"localName": device.name}
    )
    if backend.adapter:
        config["adapter"] = backend.adapter
    meta = {"namespace": options.namespace}
    model = DeviceModel.model_validate(
        {
            "metadata": {"name": model_name, **meta},
            "spec": {"protocol": "ble", "properties": model_props},
        }
    )
    dev = Device.model_validate(
        {
            "metadata": {"name": name, **meta},
            "spec": {
                "deviceModelRef": {"name": model_name},
                "nodeName": options.node,
                "protocol": {"protocolName": "ble", "configData": config},
                "properties": device_props,
            },
        }
    )
    return Discovered(models=(model,), devices=(dev,), notes=tuple(notes))


def _describe_char(char: BleakGATTCharacteristic) -> str:
    """bleak's name for a Bluetooth SIG characteristic, or "characteristic" for a vendor's own."""
    return char.description if char.description and char.description != "Unknown" else "characteristic"


def _property_name(char: BleakGATTCharacteristic) -> str:
    if _describe_char(char) != "characteristic":
        return manifest_name(char.description, fallback="characteristic")
    return f"char-{char.uuid[:8]}"


def _unique(name: str, used: set[str]) -> str:
    candidate, n = name, 2
    while candidate in used:
        candidate, n = f"{name}-{n}", n + 1
    used.add(candidate)
    return candidate
