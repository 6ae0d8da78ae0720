"""``edgetwin discover TARGET``: look for devices and print their DeviceModel and Device YAML.

The target says the protocol: ``opc.tcp://HOST:PORT/PATH`` browses an OPC UA server, ``ble``
scans for Bluetooth LE devices, ``modbus://HOST:PORT`` (or a serial port such as ``/dev/ttyUSB0``)
looks for responding Modbus slave ids. Each protocol's scan lives in its plugin
(``mappers.<protocol>.discovery``), so its library is imported only when it is used.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from types import ModuleType

from edgetwin.settings import DEFAULT_NODE
from mappers.discovery import Discovered, DiscoverOptions
from twin.errors import PermanentError

__all__ = ["register", "run"]


class DiscoveryUnavailable(PermanentError):
    """The target names no protocol edgetwin can scan, or that protocol's plugin is not installed."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "discover",
        help="find devices and print their DeviceModel and Device YAML",
        description=(
            "Look for devices and print a DeviceModel and a Device for each, ready for "
            "`kubectl apply -f` or `edgetwin node --devices`. Progress goes to stderr, YAML to stdout."
        ),
        epilog=(
            "targets: opc.tcp://HOST:PORT/PATH (browse an OPC UA server), ble (scan for Bluetooth LE "
            "devices; with --address, list one device's characteristics), modbus://HOST:PORT or a "
            "serial port like /dev/ttyUSB0 (find the slave ids that answer)"
        ),
    )
    parser.add_argument("target", help="opc.tcp://HOST:PORT/PATH, ble, modbus://HOST:PORT or /dev/ttyXXX")
    parser.add_argument(
        "--node", default=DEFAULT_NODE, help="spec.nodeName of the Device (default %(default)s)"
    )
    parser.add_argument("--name", help="name of the Device (default: derived from what was found)")
    parser.add_argument("--namespace", default="default", help="namespace of the objects (default default)")
    parser.add_argument("--root", help="OPC UA: node id or browse path to start from (default: Objects)")
    parser.add_argument(
        "--timeout", type=float, default=5.0, help="BLE and Modbus: seconds to scan (default 5)"
    )
    parser.add_argument("--address", help="BLE: MAC address or name of the device to list")
    parser.add_argument(
        "--slave-ids",
        default="1-247",
        help="Modbus: slave ids to try, e.g. 1-10,17 (default 1-247)",
    )
    parser.add_argument(
        "--baud", type=int, default=19200, help="Modbus on a serial port: its baud rate (default 19200)"
    )
    parser.add_argument("-o", "--output", type=Path, help="write the YAML to this file instead of stdout")
    parser.set_defaults(run=run)


def _protocol(target: str) -> str:
    lowered = target.lower()
    if lowered.startswith("opc.tcp://"):
        return "opcua"
    if lowered == "ble":
        return "ble"
    if lowered.startswith(("modbus://", "/dev/")):
        return "modbus"
    raise DiscoveryUnavailable(
        f"cannot tell the protocol of {target!r}: use opc.tcp://HOST:PORT/PATH, ble, "
        "modbus://HOST:PORT or a serial port such as /dev/ttyUSB0"
    )


def _slave_ids(text: str) -> tuple[int, ...]:
    ids: set[int] = set()
    try:
        for part in text.split(","):
            low, _, high = part.strip().partition("-")
            first, last = int(low), int(high or low)
            if not 0 <= first <= last <= 247:
                raise ValueError(part)
            ids.update(range(first, last + 1))
    except ValueError:
        raise DiscoveryUnavailable(f"--slave-ids {text!r}: use ids 0-247 like 1-10,17") from None
    return tuple(sorted(ids))


def _scanner(protocol: str) -> ModuleType:
    try:
        return importlib.import_module(f"mappers.{protocol}.discovery")
    except ModuleNotFoundError as exc:
        raise DiscoveryUnavailable(
            f"discovery for {protocol} needs {exc.name}; install it with `pip install 'edgetwin[{protocol}]'`"
        ) from exc


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


async def run(args: argparse.Namespace) -> int:
    protocol = _protocol(args.target)
    options = DiscoverOptions(
        node=args.node,
        namespace=args.namespace,
        name=args.name,
        root=args.root,
        timeout=args.timeout,
        address=args.address,
        slave_ids=_slave_ids(args.slave_ids),
        baud_rate=args.baud,
    )
    found: Discovered = await _scanner(protocol).discover(args.target, options, _progress)
    text = found.to_yaml()
    if args.output is not None:
        args.output.write_text(text, encoding="utf-8")
        _progress(
            f"wrote {len(found.models)} DeviceModel(s) and {len(found.devices)} Device(s) to {args.output}"
        )
    else:
        sys.stdout.write(text)
    return 0
