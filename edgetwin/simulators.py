"""The simulated devices of the single-machine stack, where crds/samples point.

A Modbus PLC (TCP, port 5020), an OPC UA boiler (port 4840) and a BLE thermometer on the simulated
BLE adapter. The BLE peripheral lives in the process of the mapper that reads it (the simulated
adapter is in-process), so these run inside the node's process (``edgetwin node --simulate``).
GPIO needs none: off a Raspberry Pi the GPIO mapper uses gpiozero's mock pins by itself. Each
protocol library is imported only when its simulator is asked for.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from twin.errors import TemporaryError

__all__ = ["SIMULATED", "SimulatorPorts", "check_free", "serve_simulators"]

log = logging.getLogger(__name__)

SIMULATED = ("modbus", "opcua", "ble")


@dataclass(frozen=True)
class SimulatorPorts:
    """Where the simulators listen; crds/samples point at the defaults."""

    modbus: int = 5020
    opcua: int = 4840


def check_free(what: str, port: int, flag: str, host: str = "127.0.0.1") -> None:
    """``TemporaryError`` naming the flag that moves ``what`` when ``host:port`` is taken."""
    with socket.socket() as probe:
        # As the servers themselves bind: connections of a previous run in TIME_WAIT do not count.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise TemporaryError(
                f"{what} needs {host}:{port}, which is in use ({exc.strerror}): pick another port with {flag}"
            ) from exc


async def serve_simulators(
    protocols: Sequence[str], ports: SimulatorPorts, ready: asyncio.Event | None = None
) -> None:
    """Serve the simulated devices of ``protocols`` until cancelled; ``ready`` once all listen."""
    unknown = sorted(set(protocols) - set(SIMULATED))
    if unknown:
        raise TemporaryError(f"no simulator for {', '.join(unknown)} (there are: {', '.join(SIMULATED)})")
    if "modbus" in protocols:
        check_free("the simulated Modbus PLC", ports.modbus, "--sim-modbus-port")
    if "opcua" in protocols:
        check_free("the simulated OPC UA boiler", ports.opcua, "--sim-opcua-port")
    started = {protocol: asyncio.Event() for protocol in protocols}
    async with asyncio.TaskGroup() as group:
        if "modbus" in protocols:
            from mappers.modbus.simulator import serve_sample as serve_modbus

            plc = serve_modbus("127.0.0.1", ports.modbus, ready=started["modbus"])
            group.create_task(plc, name="simulated Modbus PLC")
        if "opcua" in protocols:
            from mappers.opcua.simulator import serve_sample as serve_opcua

            boiler = serve_opcua("127.0.0.1", ports.opcua, ready=started["opcua"])
            group.create_task(boiler, name="simulated OPC UA boiler")
        if "ble" in protocols:
            from mappers.ble.sample import serve_sample as serve_ble

            group.create_task(serve_ble(ready=started["ble"]), name="simulated BLE thermometer")
        for event in started.values():
            await event.wait()
        log.info("simulated devices: %s", ", ".join(protocols))
        if ready is not None:
            ready.set()
