"""The node's twin store: tinydb files under a data directory, surviving ``kill -9`` and restarts.

TinyDB rewrites its whole file on every write (NOTES.md: ~210 durable writes/s with 1,000 devices
in one file), so files are split by write rate (DESIGN.md §8):

* ``definitions.json``: Devices and DeviceModels, written only when they change;
* ``twins/NAMESPACE__NAME.json``: one small file per device, written and ``fsync``-ed whenever a
  desired value changes, before the twin publishes its result. Its cost does not grow with the
  number of devices;
* ``reported.json``: the twins whose reported values or state changed, all in one file, rewritten
  every ``flush_interval`` seconds (default 0.5) while anything changes, without fsync. One
  sequential write of every changed twin is far cheaper than a file per twin when a thousand
  devices report at once.

Each record carries a sequence number; loading takes, per device, the newest record of the two
places. Every file is replaced atomically (temporary file + ``os.replace``), so a kill at any moment
leaves the old or the new version, never a torn one.

What a crash can lose: nothing acknowledged as desired. A ``kill -9`` of the service loses at most
the reported values of the last ``flush_interval``; a power cut can also lose what the kernel had
not yet written back (Linux: up to ~30 s by default). The device is the source of truth for
reported values and is read again after a restart.

All file writes go through one worker thread, so they never block the event loop and never race.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from tinydb.storages import Storage

from twin.device_table import DeviceTable, encode_device
from twin.engine import DeviceTwin
from twin.errors import InvalidManifest, StoreCorrupt
from twin.manifests import parse_manifest
from twin.memory import release_free_memory
from twin.models import Device, DeviceModel

__all__ = ["AtomicJSONStorage", "StoreCorrupt", "StoredState", "TwinStore"]

log = logging.getLogger(__name__)


class AtomicJSONStorage(Storage):
    """TinyDB storage that replaces its file atomically; ``fsync`` decides if a write is durable."""

    def __init__(self, path: str | Path, *, fsync: bool = True) -> None:
        self.path = Path(path)
        self.fsync = fsync

    def read(self) -> dict[str, dict[str, Any]] | None:
        return _read_document(self.path)

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        self.write_bytes(orjson.dumps(data))

    def write_bytes(self, raw: bytes) -> None:
        """Replace the file with ``raw``, already serialised TinyDB JSON."""
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with tmp.open("wb") as handle:
            handle.write(raw)
            if self.fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, self.path)
        if self.fsync:
            _fsync_dir(self.path.parent)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class StoredState:
    models: dict[str, DeviceModel] = field(default_factory=dict)
    devices: DeviceTable = field(default_factory=DeviceTable)
    twins: dict[str, DeviceTwin] = field(default_factory=dict)


def _read_document(path: str | Path) -> dict[str, dict[str, Any]] | None:
    """A TinyDB file's document; ``None`` if there is no such file."""
    try:
        raw = _read_bytes(path)
    except FileNotFoundError:
        return None
    if not raw:
        # Every write is a whole atomic file: an empty one was truncated by something else.
        raise StoreCorrupt(f"{path} is empty")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise StoreCorrupt(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise StoreCorrupt(f"{path} does not hold a TinyDB document")
    return data


def _read_bytes(path: str | Path) -> bytes:
    # The file descriptor itself, not open(): no Path, no buffered file object for each of a
    # thousand twin files read at start-up (half the time of reading them).
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _rows(file: str | Path, table: str = "_default") -> list[Mapping[str, Any]]:
    data = _read_document(file) or {}
    rows = data.get(table, {})
    if not isinstance(rows, dict) or not all(isinstance(row, dict) for row in rows.values()):
        raise StoreCorrupt(f"{file}: table {table!r} does not hold TinyDB records")
    return list(rows.values())


def _read_definitions(file: Path) -> tuple[dict[str, DeviceModel], DeviceTable]:
    models: dict[str, DeviceModel] = {}
    # Each Device is checked, kept as its JSON and let go before the next (``twin.device_table``).
    devices = DeviceTable()
    try:
        for table in ("models", "devices"):
            for row in _rows(file, table):
                obj = parse_manifest(row["object"], source=str(file))
                if isinstance(obj, DeviceModel):
                    models[obj.key] = obj
                elif isinstance(obj, Device):
                    devices.put(obj.id, obj)
                else:
                    raise InvalidManifest(f"a row of table {table!r} holds no Device or DeviceModel")
    except (KeyError, InvalidManifest) as exc:
        raise StoreCorrupt(f"{file}: a stored definition cannot be read: {exc}") from exc
    return models, devices


def _read_twins(
    file: str | Path, known: Mapping[str, tuple[int, DeviceTwin]] | None = None
) -> list[tuple[int, DeviceTwin]]:
    """The records of ``file``; with ``known``, only those newer than the ones known already."""
    twins = []
    for row in _rows(file):
        device_id, seq = row.get("device_id"), row.get("seq", 0)
        if not isinstance(device_id, str) or "/" not in device_id:
            raise StoreCorrupt(f"{file}: a record without a device_id")
        if not isinstance(seq, int) or isinstance(seq, bool):
            raise StoreCorrupt(f"{file}: record of {device_id} has a seq that is not a number")
        if known is not None and device_id in known and known[device_id][0] >= seq:
            continue  # superseded: building it would only cost start-up time
        try:
            twins.append((seq, DeviceTwin.from_record(row)))
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise StoreCorrupt(f"{file}: record of {device_id} cannot be read: {exc!r}") from exc
    return twins


#: A flush of this many twins is followed by giving freed memory back to the system.
_MANY_TWINS = 64


def _row(key: str, obj: bytes) -> bytes:
    """A definitions row, ``{"key": ..., "object": ...}``, around an object already in JSON."""
    return b'{"key":%s,"object":%s}' % (orjson.dumps(key), obj)


def _twin_file_name(device_id: str) -> str:
    namespace, _, name = device_id.rpartition("/")
    # Kubernetes names are DNS-1123 (no "_"), so "__" cannot collide.
    return f"{namespace or 'default'}__{name}.json"


class TwinStore:
    """Definitions and twins of one node under ``data_dir``; use as an async context manager."""

    def __init__(self, data_dir: Path | str, *, flush_interval: float = 0.5) -> None:
        self.data_dir = Path(data_dir)
        self.flush_interval = flush_interval
        self._twins_dir = self.data_dir / "twins"
        self._removed_dir = self.data_dir / "removed"
        self._reported_file = self.data_dir / "reported.json"
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="twin-store")
        # Twins changed since the last flush (records are built at flush time, once per flush).
        self._dirty: dict[str, DeviceTwin] = {}
        # Every record reported.json holds, serialised: twins written behind since their last
        # durable write. Kept as bytes so a flush serialises only what changed, in the loop, in
        # slices: serialising all in the writer thread would hold the GIL and stall requests.
        self._behind: dict[str, bytes] = {}
        self._seq = 0
        self._wake = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._closed = False

    async def __aenter__(self) -> TwinStore:
        self._twins_dir.mkdir(parents=True, exist_ok=True)
        self._flusher = asyncio.create_task(self._flush_loop(), name=f"twin store flusher {self.data_dir}")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self.flush()
        self._executor.shutdown(wait=True)

    # -- reading ----------------------------------------------------------------------------------

    def load(self) -> StoredState:
        """Everything stored; an unreadable file is moved aside (``*.corrupt``) with an error in the log.

        Unreadable means anything but what this store writes: bad JSON, an empty file, or valid
        JSON of the wrong shape (a record without ``device_id``, a ``seq`` that is not a number).
        """
        state = StoredState()
        definitions = self.data_dir / "definitions.json"
        if definitions.exists():
            try:
                state.models, state.devices = _read_definitions(definitions)
            except StoreCorrupt as exc:
                self._quarantine(definitions, exc)
        newest: dict[str, tuple[int, DeviceTwin]] = {}
        # reported.json first: it holds the newest record of every twin written behind since its
        # last durable write, so the older records in twins/ are skipped rather than built.
        files = [str(self._reported_file)] if self._reported_file.exists() else []
        if self._twins_dir.exists():
            # Names, not Paths, are sorted and joined: a thousand Paths cost more than reading them.
            folder = str(self._twins_dir)
            names = sorted(e.name for e in os.scandir(folder) if e.name.endswith(".json"))
            files += [os.path.join(folder, name) for name in names if not name.startswith(".")]  # noqa: PTH118
        for file in files:
            try:
                twins = _read_twins(file, newest)
            except StoreCorrupt as exc:
                self._quarantine(Path(file), exc)
                continue
            for seq, twin in twins:
                known = newest.get(twin.device_id)
                if known is None or seq > known[0]:
                    newest[twin.device_id] = (seq, twin)
        for device_id, (seq, twin) in newest.items():
            self._seq = max(self._seq, seq)
            state.twins[device_id] = twin
        return state

    def _quarantine(self, file: Path, error: StoreCorrupt) -> None:
        aside = file.with_name(file.name + ".corrupt")
        if aside.exists():
            aside = file.with_name(f"{file.name}.{time.time_ns()}.corrupt")
        os.replace(file, aside)
        log.error(
            "store file %s could not be read (%s); moved to %s and started without it", file, error, aside
        )

    # -- writing ----------------------------------------------------------------------------------

    async def save_definitions(
        self, models: Mapping[str, DeviceModel], devices: Mapping[str, Device]
    ) -> None:
        """Replace the stored Devices and DeviceModels (durable before it returns)."""
        model_rows = [_row(k, m.model_dump_json().encode()) for k, m in sorted(models.items())]
        # A table's Devices are written as the JSON it holds, without building each one again.
        if isinstance(devices, DeviceTable):
            device_rows = [_row(k, devices.json(k)) for k in sorted(devices)]
        else:
            device_rows = [_row(k, encode_device(d)) for k, d in sorted(devices.items())]
        await self._run(self._write_definitions, model_rows, device_rows)

    def _write_definitions(self, model_rows: list[bytes], device_rows: list[bytes]) -> None:
        path = self.data_dir / "definitions.json"
        # TinyDB's layout, {"models": {"1": row, ...}, "devices": {...}}, joined from rows already in JSON.
        tables = [
            b'"%s":{%s}' % (name, b",".join(b'"%d":%s' % (i, row) for i, row in enumerate(rows, start=1)))
            for name, rows in ((b"models", model_rows), (b"devices", device_rows))
        ]
        AtomicJSONStorage(path).write_bytes(b"{" + b",".join(tables) + b"}")

    async def save_twin(self, twin: DeviceTwin, *, durable: bool) -> None:
        """Store a twin: now and fsync-ed if ``durable``, else within ``flush_interval``."""
        if durable:
            self._dirty.pop(twin.device_id, None)
            self._behind.pop(twin.device_id, None)
            await self._run(self._write_twin, self._record(twin))
        else:
            self._dirty[twin.device_id] = twin
            self._wake.set()

    async def archive_twin(self, twin: DeviceTwin) -> Path:
        """Take a twin out of the served set, keeping it under ``removed/`` (durable); its path.

        A device that leaves the node's devices (a mistyped ``--devices``, a Device moved or
        deleted) loses nothing: ``restore_twin`` brings its twin back if the device returns.
        """
        self._dirty.pop(twin.device_id, None)
        if self._behind.pop(twin.device_id, None) is not None:
            self._wake.set()  # the next flush writes reported.json without it
        path = self._removed_dir / _twin_file_name(twin.device_id)
        await self._run(self._move_twin, self._record(twin), path)
        return path

    async def restore_twin(self, device_id: str) -> DeviceTwin | None:
        """Bring back the twin ``archive_twin`` kept for a device (``None`` if there is none).

        It is stored as served again (durable) before the archive is removed; an unreadable
        archive is moved aside.
        """
        path = self._removed_dir / _twin_file_name(device_id)
        if not path.exists():
            return None
        try:
            twins = _read_twins(path)
        except StoreCorrupt as exc:
            self._quarantine(path, exc)
            return None
        twin = next((twin for _, twin in twins if twin.device_id == device_id), None)
        if twin is not None:
            await self.save_twin(twin, durable=True)
        await self._run(path.unlink)
        return twin

    async def flush(self) -> None:
        """Write every twin changed behind since the last flush, now."""
        if not self._dirty and not self._wake.is_set():
            return
        self._wake.clear()
        dirty, self._dirty = self._dirty, {}
        for count, (device_id, twin) in enumerate(dirty.items(), start=1):
            if self._dirty.pop(device_id, None) is None:
                self._behind[device_id] = orjson.dumps(self._record(twin))
            if count % 20 == 0:
                # Building a thousand records blocks the loop for tens of ms: let requests through.
                await asyncio.sleep(0)
        # Twins changed again while this batch was built are recorded now, in their latest state.
        for device_id, twin in self._dirty.items():
            self._behind[device_id] = orjson.dumps(self._record(twin))
        self._dirty = {}
        # Joined once from the records as they are: no thousand copies of them made on the way
        # (each flush's copies, freed among the records that stay, only fragment the allocator).
        parts = [b'{"_default":{']
        for i, raw in enumerate(self._behind.values(), start=1):
            parts += (b'"%d":' % i if i == 1 else b',"%d":' % i, raw)
        parts.append(b"}}")
        snapshot = b"".join(parts)
        await self._run(AtomicJSONStorage(self._reported_file, fsync=False).write_bytes, snapshot)
        if len(dirty) >= _MANY_TWINS:
            # The records replaced, and the messages of the reports that made them, leave the C
            # allocator's heap full of holes: ~10 MB of a thousand devices reporting each second.
            # Given back here (~0.3 ms), at most once a flush.
            release_free_memory()

    def _record(self, twin: DeviceTwin) -> dict[str, Any]:
        # Clock-based, so a store that never called load() still writes newer numbers than the
        # files it finds; load() keeps it monotonic if the clock steps back.
        self._seq = max(self._seq + 1, time.time_ns())
        record = twin.to_record()
        record["seq"] = self._seq
        return record

    def _write_twin(self, record: dict[str, Any]) -> None:
        path = self._twins_dir / _twin_file_name(record["device_id"])
        # One document per file, the device's whole twin, in TinyDB's layout, in one atomic write.
        AtomicJSONStorage(path).write({"_default": {"1": record}})

    def _move_twin(self, record: dict[str, Any], archive: Path) -> None:
        archive.parent.mkdir(exist_ok=True)
        AtomicJSONStorage(archive).write({"_default": {"1": record}})
        with contextlib.suppress(FileNotFoundError):
            (self._twins_dir / _twin_file_name(record["device_id"])).unlink()

    async def _run(self, func: Any, *args: Any) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, func, *args)

    async def _flush_loop(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(self.flush_interval)
            try:
                await self.flush()
            except OSError:
                # What was not written stays in memory and goes with the next flush.
                log.exception("writing reported values to %s failed; will retry", self._reported_file)
                self._wake.set()
