"""A node's Devices held as their JSON, each built as a ``Device`` again only where one is read.

A ``Device`` as a pydantic model is ~11 KB of objects (a dozen models, each with its ``__dict__``,
a fields-set and an extras dict, and their strings); its JSON is ~1.3 KB. A node keeps its
thousand Devices for months but reads them seldom: when its definitions change, when a mapper asks
for its membership, on a cloud hello. Everything it reads per request (property rules, twins) lives
elsewhere (``DeviceSchema``, ``DeviceTwin``). So the node holds each Device as its JSON, and a
``Device`` read from the table is validated from it again (~12 us), equal to the one put in.

The JSON is ``Device.model_dump_json()``: what the store writes (``definitions.json``) and what a
membership answer carries (``document``), so neither needs the model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import orjson

from twin.models import Device

__all__ = ["DeviceTable", "encode_device"]


def encode_device(device: Device) -> bytes:
    """The JSON a table holds for ``device`` (all fields, defaults included, unknown ones kept)."""
    return device.model_dump_json().encode()


class DeviceTable(Mapping[str, Device]):
    """Devices by ``namespace/name``, read-only as a mapping; ``put`` and ``pop`` change it."""

    __slots__ = ("_held", "_json")

    def __init__(self) -> None:
        self._json: dict[str, bytes] = {}
        #: Devices also kept as objects, for a while (those an assignment brought, until the
        #: definitions are applied: they are not built again from their JSON meanwhile).
        self._held: dict[str, Device] = {}

    @classmethod
    def of(cls, devices: Mapping[str, Device]) -> DeviceTable:
        table = cls()
        for device_id, device in devices.items():
            table.put(device_id, device)
        return table

    def copy(self) -> DeviceTable:
        """The same Devices (their JSON is shared, not copied), none held as objects."""
        table = DeviceTable()
        table._json = dict(self._json)
        return table

    def put(self, device_id: str, device: Device, *, json: bytes | None = None, hold: bool = False) -> None:
        """Hold ``device`` under ``device_id``; ``json``: its ``encode_device`` if the caller has it."""
        self._json[device_id] = encode_device(device) if json is None else json
        if hold:
            self._held[device_id] = device
        else:
            self._held.pop(device_id, None)

    def put_json(self, device_id: str, json: bytes) -> None:
        """Hold the Device whose JSON (``encode_device``) is ``json`` under ``device_id``."""
        self._json[device_id] = json
        self._held.pop(device_id, None)

    def pop(self, device_id: str) -> None:
        self._json.pop(device_id, None)
        self._held.pop(device_id, None)

    def __getitem__(self, device_id: str) -> Device:
        held = self._held.get(device_id)
        if held is not None:
            return held
        return Device.model_validate_json(self._json[device_id])

    def __iter__(self) -> Iterator[str]:
        return iter(self._json)

    def __len__(self) -> int:
        return len(self._json)

    def __contains__(self, device_id: object) -> bool:
        return device_id in self._json

    def json(self, device_id: str) -> bytes:
        """The Device's JSON (``encode_device``); ``KeyError`` if the table has no such device."""
        return self._json[device_id]

    def document(self, device_id: str) -> dict[str, Any]:
        """The Device as ``model_dump(mode="json")`` gives it, read from its JSON."""
        document = orjson.loads(self._json[device_id])
        assert isinstance(document, dict)
        return document

    def json_of(self, device_id: str, device: Device) -> bytes:
        """``device``'s JSON: taken from the table if it holds that very object, else encoded."""
        if self._held.get(device_id) is device:
            return self._json[device_id]
        return encode_device(device)

    def holds(self, device_id: str, json: bytes, device: Callable[[], Device]) -> bool:
        """Whether the table holds a Device equal to the one whose JSON is ``json`` under this id
        (``device`` builds that one, needed only if the JSON differs)."""
        mine = self._json.get(device_id)
        if mine is None:
            return False
        # Equal JSON is an equal Device; different JSON may still be one (keys in another order,
        # 1 and 1.0 in a configData): the models decide then, as dict equality would.
        return mine == json or self[device_id] == device()
