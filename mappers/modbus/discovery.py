"""``edgetwin discover modbus://HOST:PORT`` (or ``/dev/ttyUSB0``): which slave ids answer, as YAML.

Modbus cannot list a device's registers, only show who answers. Each slave id is asked for holding
register 0 with a short timeout: any answer, even an exception (illegal data address), means a
slave is there; silence, or a gateway's "no response from the target" (exception 10/11), means
it is not. Each slave that answered is then asked for address 0 of the other three tables, and
gets a DeviceModel and a Device whose properties are the addresses that answered: placeholders that
load and serve as they are, with comments saying what to fill in from the device's register map.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from mappers.discovery import Discovered, DiscoverOptions, Progress, manifest_name
from mappers.modbus.config import ModbusConfig
from mappers.modbus.decoding import RegisterKind
from mappers.modbus.link import ModbusLink
from twin.errors import DeviceRefused, DeviceUnreachable, PermanentError
from twin.models import Device, DeviceModel

__all__ = ["ANSWER_TIMEOUT", "InvalidTarget", "discover"]

#: Seconds each slave id gets to answer: a slave answers in milliseconds (a few more at 9600 baud).
ANSWER_TIMEOUT = 0.25
_TABLES = (RegisterKind.HOLDING, RegisterKind.INPUT, RegisterKind.COIL, RegisterKind.DISCRETE_INPUT)
_PROPERTY_NAMES = {
    RegisterKind.HOLDING: "holding-0",
    RegisterKind.INPUT: "input-0",
    RegisterKind.COIL: "coil-0",
    RegisterKind.DISCRETE_INPUT: "discrete-input-0",
}
# Every one of this many ids answering over TCP: a single device that ignores the unit id.
_ALL_ANSWER = 16


class InvalidTarget(PermanentError):
    """A discover target that is not ``modbus://HOST[:PORT]`` or a serial port path."""


@dataclass
class _Slave:
    id: int
    answers: dict[RegisterKind, int | bool] = field(default_factory=dict)
    refused: dict[RegisterKind, str] = field(default_factory=dict)


def target_config(target: str, options: DiscoverOptions) -> ModbusConfig:
    """The Modbus connection ``target`` names, with the short per-id timeout of a scan."""
    timeout_ms = ANSWER_TIMEOUT * 1000
    if target.startswith("/dev/"):
        data: dict[str, Any] = {
            "communicateMode": "RTU",
            "serialPort": target,
            "baudRate": options.baud_rate,
            "timeout": timeout_ms,
        }
    else:
        url = urlsplit(target)
        try:
            port = url.port or 502
        except ValueError:
            raise InvalidTarget(f"{target!r}: the port must be a number from 1 to 65535") from None
        if url.scheme.lower() != "modbus" or not url.hostname or url.path not in ("", "/"):
            raise InvalidTarget(f"{target!r}: use modbus://HOST:PORT or a serial port such as /dev/ttyUSB0")
        data = {"communicateMode": "TCP", "ip": url.hostname, "port": port, "timeout": timeout_ms}
    try:
        return ModbusConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InvalidTarget(f"{target!r}: {problems}") from exc


async def discover(target: str, options: DiscoverOptions, progress: Progress) -> Discovered:
    config = target_config(target, options)
    where = config.serialPort if config.mode == "RTU" else f"{config.ip}:{config.port}"
    ids = options.slave_ids
    if not ids:
        raise InvalidTarget("no slave ids to try")
    link = ModbusLink(config)
    await link.connect()  # DeviceUnreachable: nothing listens there
    loop = asyncio.get_running_loop()
    deadline = loop.time() + options.timeout
    progress(
        f"asking {len(ids)} slave id(s) on {where} for holding register 0 "
        f"({ANSWER_TIMEOUT:g} s each at most, {options.timeout:g} s in all)"
    )
    found: list[_Slave] = []
    tried = 0
    shown = loop.time()
    try:
        for slave_id in ids:
            if loop.time() >= deadline:
                break
            tried += 1
            slave = await _probe(link, config, slave_id)
            if slave is not None:
                found.append(slave)
                progress(f"slave {slave_id}: answered ({_summary(slave)})")
            if loop.time() - shown >= 1.0:
                shown = loop.time()
                progress(f"tried {tried} of {len(ids)} ids, {len(found)} answered")
    finally:
        link.close()
    untried = ids[tried:]
    if not found:
        hint = f"; ids {_ranges(untried)} were not tried in {options.timeout:g} s" if untried else ""
        raise DeviceUnreachable(
            f"no Modbus slave answered on {where} (tried ids {_ranges(ids[:tried])}{hint})"
        )
    progress(f"{len(found)} slave(s) answered on {where}: {', '.join(str(s.id) for s in found)}")
    return _manifests(found, config, where, untried, options)


@dataclass(frozen=True)
class _Refused:
    why: str


async def _ask(
    link: ModbusLink, config: ModbusConfig, slave_id: int, table: RegisterKind
) -> int | bool | _Refused | None:
    """Address 0 of ``table``: its value, the exception the slave answered, or ``None`` for silence."""
    if not link.connected:
        await link.connect()  # a timed-out TCP link is dropped; the server going away ends the scan
    try:
        values = await link.read(table, 0, 1, slave_id)
    except DeviceRefused as exc:  # an exception answer: the slave is there
        return _Refused(str(exc).rpartition(" answered ")[2] or str(exc))
    except DeviceUnreachable:
        return None
    finally:
        if config.frame_gap_seconds:
            await asyncio.sleep(config.frame_gap_seconds)  # the quiet time of a serial line
    return bool(values[0]) if table.is_bits else int(values[0])


async def _probe(link: ModbusLink, config: ModbusConfig, slave_id: int) -> _Slave | None:
    """The slave's answers for address 0 of each table; ``None`` if holding register 0 gets silence."""
    slave = _Slave(slave_id)
    for table in _TABLES:
        answer = await _ask(link, config, slave_id, table)
        if answer is None and table is _TABLES[0]:
            return None
        if isinstance(answer, _Refused):
            slave.refused[table] = answer.why
        elif answer is not None:
            slave.answers[table] = answer
    return slave


def _summary(slave: _Slave) -> str:
    parts = [f"{_PROPERTY_NAMES[t]} = {v}" for t, v in slave.answers.items()]
    parts += [f"{_PROPERTY_NAMES[t]}: {why}" for t, why in slave.refused.items()]
    return ", ".join(parts)


def _manifests(
    found: list[_Slave], config: ModbusConfig, where: str, untried: tuple[int, ...], options: DiscoverOptions
) -> Discovered:
    if options.name:
        base = manifest_name(options.name)
    elif config.mode == "RTU":
        base = manifest_name(f"modbus-{Path(config.serialPort).name}")
    else:
        base = manifest_name(f"modbus-{config.ip}-{config.port}")
    models, devices = [], []
    for slave in found:
        name = base if options.name and len(found) == 1 else f"{base}-slave-{slave.id}"
        model, device = _objects(name, slave, config, options)
        models.append(model)
        devices.append(device)
    notes = [
        f"Modbus slaves on {where} found by `edgetwin discover`: {', '.join(str(s.id) for s in found)}.",
        "Modbus cannot list registers: each property is an address that answered during the scan. "
        "Rename the properties and set\ntype, accessMode (DeviceModel) and register, offset, limit, "
        "scale, dataType (Device visitors) from the device's register map;\nsee docs/mappers.md, Modbus.",
    ]
    if (
        len(found) >= _ALL_ANSWER
        and len(found) == len(options.slave_ids) - len(untried)
        and config.mode == "TCP"
    ):
        notes.append(
            "Every slave id answered: this is probably one device that ignores the unit id (most Modbus TCP "
            "devices do).\nKeep one Device and delete the others."
        )
    if untried:
        needed = len(options.slave_ids) * ANSWER_TIMEOUT
        notes.append(
            f"The scan stopped after {options.timeout:g} s: ids {_ranges(untried)} were not tried "
            f"(--timeout {needed:.0f} tries them all, or narrow --slave-ids)."
        )
    return Discovered(models=tuple(models), devices=tuple(devices), notes=tuple(notes))


def _objects(
    name: str, slave: _Slave, config: ModbusConfig, options: DiscoverOptions
) -> tuple[DeviceModel, Device]:
    model_name = f"{name}-model"
    properties, visitors = [], []
    for table, value in slave.answers.items():
        prop = _PROPERTY_NAMES[table]
        properties.append(
            {
                "name": prop,
                "description": f"placeholder: {table.value} 0 read {value} during discovery",
                "type": "BOOLEAN" if table.is_bits else "INT",
                "accessMode": "ReadOnly",
            }
        )
        visitors.append(
            {
                "name": prop,
                "collectCycle": 1000,
                "reportToCloud": True,
                "visitors": {
                    "protocolName": "modbus",
                    "configData": {"register": table.value, "offset": 0, "limit": 1},
                },
            }
        )
    if config.mode == "RTU":
        connection: dict[str, Any] = {
            "communicateMode": "RTU",
            "serialPort": config.serialPort,
            "baudRate": config.baudRate,
            "dataBits": config.dataBits,
            "parity": {"N": "none", "E": "even", "O": "odd"}[config.parity],
            "stopBits": config.stopBits,
        }
    else:
        connection = {"communicateMode": "TCP", "ip": config.ip, "port": config.port}
    meta = {"namespace": options.namespace, "labels": {"edgetwin.io/protocol": "modbus"}}
    model = DeviceModel.model_validate(
        {
            "metadata": {"name": model_name, **meta},
            "spec": {"protocol": "modbus", "properties": properties},
        }
    )
    device = Device.model_validate(
        {
            "metadata": {"name": name, **meta},
            "spec": {
                "deviceModelRef": {"name": model_name},
                "nodeName": options.node,
                "protocol": {"protocolName": "modbus", "configData": {**connection, "slaveID": slave.id}},
                "properties": visitors,
            },
        }
    )
    return model, device


def _ranges(ids: tuple[int, ...] | list[int]) -> str:
    """``1-5,9`` for 1, 2, 3, 4, 5, 9."""
    parts: list[str] = []
    start = prev = None
    for i in sorted(ids):
        if start is None:
            start = prev = i
        elif prev is not None and i == prev + 1:
            prev = i
        else:
            parts.append(f"{start}-{prev}" if start != prev else str(start))
            start = prev = i
    if start is not None:
        parts.append(f"{start}-{prev}" if start != prev else str(start))
    return ",".join(parts)
