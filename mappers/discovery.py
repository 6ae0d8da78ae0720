"""What ``edgetwin discover`` finds, as DeviceModels and Devices ready for ``kubectl apply``.

Each protocol plugin that can look for devices has a module ``mappers.<protocol>.discovery`` with

    async def discover(target: str, options: DiscoverOptions, progress: Progress) -> Discovered

It may import its protocol library (it lives inside the plugin). The command line finds it by
protocol, prints ``Discovered.to_yaml()``, and the YAML loads back unchanged into the twin.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import yaml

from twin.models import Device, DeviceModel

__all__ = ["DiscoverOptions", "Discovered", "Progress", "manifest_name"]

#: Called with a short line for the user while a scan runs ("browsing ns=2;i=5 (40 nodes so far)").
Progress = Callable[[str], None]


@dataclass(frozen=True)
class DiscoverOptions:
    """What the user asked for; each protocol uses the fields that apply to it."""

    node: str = "edge-node-1"
    namespace: str = "default"
    #: Name of the Device to write (its DeviceModel is ``NAME-model``); derived from the target if unset.
    name: str | None = None
    #: OPC UA: the node to browse from (``ns=2;s=Boiler``, or a browse path); default the Objects folder.
    root: str | None = None
    #: Scans (BLE, Modbus slave ids): seconds to spend.
    timeout: float = 5.0
    #: BLE: the device to connect to and list characteristics of (MAC address or advertised name).
    address: str | None = None
    #: Modbus: slave ids to try.
    slave_ids: tuple[int, ...] = field(default_factory=lambda: tuple(range(1, 248)))
    #: Serial targets (Modbus RTU on /dev/ttyUSB0): the line's speed.
    baud_rate: int = 19200


@dataclass(frozen=True)
class Discovered:
    """Manifests found by a scan, plus notes for the user (printed as YAML comments)."""

    models: tuple[DeviceModel, ...] = ()
    devices: tuple[Device, ...] = ()
    notes: tuple[str, ...] = ()

    def to_yaml(self) -> str:
        header = "".join(f"# {line}\n" for note in self.notes for line in note.splitlines())
        docs = [_clean(m.model_dump(mode="json", exclude_none=True)) for m in self.models]
        docs += [_clean(d.model_dump(mode="json", exclude_none=True)) for d in self.devices]
        body = yaml.safe_dump_all(docs, sort_keys=False, default_flow_style=False, allow_unicode=True)
        return header + body


def _clean(doc: object) -> object:
    """Drop empty values the models fill in by default, so the YAML reads as hand-written."""
    if isinstance(doc, dict):
        cleaned = {k: _clean(v) for k, v in doc.items()}
        return {k: v for k, v in cleaned.items() if v not in ({}, [], None, "")}
    if isinstance(doc, list):
        return [_clean(v) for v in doc]
    return doc


_NOT_DNS = re.compile(r"[^a-z0-9-]+")


def manifest_name(text: str, *, fallback: str = "device") -> str:
    """A Kubernetes object name (DNS-1123 label) from free text: ``"Boiler #1"`` → ``boiler-1``."""
    name = _NOT_DNS.sub("-", text.lower()).strip("-")[:63].strip("-")
    return name or fallback
