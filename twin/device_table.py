"""A node's Devices held as compressed JSON, each built as a ``Device`` again only where one is read.

A ``Device`` as a pydantic model is ~11 KB of objects (a dozen models, each with its ``__dict__``,
a fields-set and an extras dict, and their strings); its JSON is ~1.3 KB. A node keeps its
thousand Devices for months but reads them seldom: when its definitions change, when a mapper asks
for its membership, on a cloud hello. Everything it reads per request (property rules, twins) lives
elsewhere (``DeviceSchema``, ``DeviceTwin``). So the node holds each Device as its JSON, and a
``Device`` read from the table is validated from it again (~12 us), equal to the one put in.

The JSON is ``Device.model_dump_json()``: what the store writes (``definitions.json``) and what a
membership answer carries (``document``), so neither needs the model. It is held deflated against
a dictionary, the first Device JSON the process held: a node's devices are mostly alike (the same
model, the same protocol, the same keys), so each one is then the ~75 bytes in which it differs
from that first one, not ~1.3 KB (1.2 MB less for 1,000 devices; ~7 us to pack, ~1.5 us to unpack).
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import orjson

from twin.models import Device

__all__ = ["DeviceTable", "encode_device"]


def encode_device(device: Device) -> bytes:
    """The JSON a table holds for ``device`` (all fields, defaults included, unknown ones kept)."""
    return device.model_dump_json().encode()


class _Packer:
    """Raw deflate against one dictionary. Equal JSON packs to equal bytes (deflate is
    deterministic for one input, dictionary and setting), so packed forms compare as their JSON."""

    #: An 8 KB window (a Device JSON is a few KB) and a small hash table: fast to copy per device.
    WBITS, MEMLEVEL, LEVEL = -13, 5, 6

    def __init__(self, dictionary: bytes) -> None:
        # Primed once with the dictionary and copied per use: priming costs more than packing.
        self._deflate = zlib.compressobj(
            self.LEVEL, zlib.DEFLATED, self.WBITS, self.MEMLEVEL, zlib.Z_DEFAULT_STRATEGY, dictionary
        )
        self._inflate = zlib.decompressobj(self.WBITS, dictionary)

    def pack(self, json: bytes) -> bytes:
        deflate = self._deflate.copy()
        return deflate.compress(json) + deflate.flush()

    def unpack(self, packed: bytes) -> bytes:
        inflate = self._inflate.copy()
        return inflate.decompress(packed) + inflate.flush()


_packer: _Packer | None = None
_packer_made = threading.Lock()


def _the_packer(first: bytes) -> _Packer:
    """The process's packer, made from the first JSON packed (one for every table: packed forms
    move between tables as they are)."""
    global _packer  # noqa: PLW0603 - one per process, made on first use
    if _packer is None:
        with _packer_made:
            if _packer is None:
                _packer = _Packer(first)
    return _packer


class DeviceTable(Mapping[str, Device]):
    """Devices by ``namespace/name``, read-only as a mapping; ``put``, ``adopt`` and ``pop`` change it."""

    __slots__ = ("_held", "_packed")

    def __init__(self) -> None:
        #: Each Device's JSON, packed (``_Packer``).
        self._packed: dict[str, bytes] = {}
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
        table._packed = dict(self._packed)
        return table

    def put(self, device_id: str, device: Device, *, hold: bool = False) -> None:
        """Hold ``device`` under ``device_id``; with ``hold`` also the object itself, until put again."""
        self.put_json(device_id, encode_device(device))
        if hold:
            self._held[device_id] = device

    def put_json(self, device_id: str, json: bytes) -> None:
        """Hold the Device whose JSON (``encode_device``) is ``json`` under ``device_id``."""
        self._packed[device_id] = _the_packer(json).pack(json)
        self._held.pop(device_id, None)

    def adopt(self, device_id: str, other: DeviceTable) -> None:
        """Hold the Device ``other`` holds under ``device_id``, as it holds it (nothing packed again)."""
        self._packed[device_id] = other._packed[device_id]
        self._held.pop(device_id, None)

    def pop(self, device_id: str) -> None:
        self._packed.pop(device_id, None)
        self._held.pop(device_id, None)

    def __getitem__(self, device_id: str) -> Device:
        held = self._held.get(device_id)
        if held is not None:
            return held
        return Device.model_validate_json(self.json(device_id))

    def __iter__(self) -> Iterator[str]:
        return iter(self._packed)

    def __len__(self) -> int:
        return len(self._packed)

    def __contains__(self, device_id: object) -> bool:
        return device_id in self._packed

    def json(self, device_id: str) -> bytes:
        """The Device's JSON (``encode_device``); ``KeyError`` if the table has no such device."""
        packed = self._packed[device_id]
        assert _packer is not None  # anything packed was packed by it
        return _packer.unpack(packed)

    def document(self, device_id: str) -> dict[str, Any]:
        """The Device as ``model_dump(mode="json")`` gives it, read from its JSON."""
        document = orjson.loads(self.json(device_id))
        assert isinstance(document, dict)
        return document

    def stamp(self, device_id: str) -> object:
        """An object that stays the same (``is``) while the table's entry for the device does: what
        is derived from a Device can be kept until its stamp changes. ``KeyError`` if not held."""
        return self._packed[device_id]

    def holds(self, device_id: str, other: DeviceTable, device: Callable[[], Device]) -> bool:
        """Whether this table holds a Device equal to the one ``other`` holds under this id
        (``device`` builds that one, needed only if their JSON differs)."""
        mine = self._packed.get(device_id)
        if mine is None:
            return False
        # Equal JSON is an equal Device; different JSON may still be one (keys in another order,
        # 1 and 1.0 in a configData): the models decide then, as dict equality would.
        return mine == other._packed[device_id] or self[device_id] == device()
