"""How the twin store's writes scale with the number of devices, next to one plain TinyDB file.

Why: TinyDB rewrites (and, with its default JSONStorage, fsyncs) its whole file on every write, so
with all devices in one file each update costs more the more devices there are (NOTES.md, Storage).
``twin.store.TwinStore`` shards one small file per device and writes reported values behind in
batches (DESIGN.md §8); this measures whether that keeps writes flat from 10 to 1,000 devices.

For each device count, in the same run and the same folder:

* **durable**: ``save_twin(durable=True)`` one after another (a desired value: written, fsync-ed,
  directory fsync-ed before it returns);
* **write-behind**: ``save_twin(durable=False)`` (a reported value) as fast as the loop goes, yielding
  to the event loop after each one as the service does between messages, with the flusher writing
  dirty twins every ``flush_interval`` in its thread; the final flush is inside the timed span;
* **flush**: the time one flush takes when every device is dirty (what the flusher thread spends
  per interval when all devices report);
* **baseline**: one TinyDB file holding every device's twin with TinyDB's default ``JSONStorage``,
  one ``upsert`` per update (durable: JSONStorage fsyncs on every write).

Each update changes one property's reported value of device ``i % N``. Run:
``.venv/bin/python bench/store_writes.py [--devices 10,100,1000] [--seconds 2] [--dir DIR]``;
``--dir`` picks the file system (fsync on tmpfs costs nothing, so the default is the system's
temporary folder, and the file system type is printed). Everything written is removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from _common import machine, table
from tinydb import Query, TinyDB

from twin.engine import DeviceTwin, TwinProperty, TwinValue
from twin.store import TwinStore


def make_twins(devices: int, properties: int) -> list[DeviceTwin]:
    twins = []
    for i in range(devices):
        twin = DeviceTwin(f"bench/dev-{i:05d}", state="online")
        for p in range(properties):
            twin.properties[f"p{p}"] = TwinProperty(actual=TwinValue("0", 0), type="int")
        twins.append(twin)
    return twins


def touch(twin: DeviceTwin, update: int, properties: int) -> None:
    """A new reported value for one property, as the engine would leave it."""
    prop = twin.properties[f"p{update % properties}"]
    prop.actual = TwinValue(str(update), time.time_ns() // 1_000_000)
    prop.actual_version.edge += 1


async def saves_per_second(
    store: TwinStore, twins: list[DeviceTwin], properties: int, seconds: float, *, durable: bool
) -> float:
    """Back-to-back saves; write-behind ones yield between updates as the service does, and the
    final flush counts."""
    count, start = 0, time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        twin = twins[count % len(twins)]
        touch(twin, count, properties)
        await store.save_twin(twin, durable=durable)
        count += 1
        if not durable:
            await asyncio.sleep(0)
    if not durable:
        await store.flush()
    return count / (time.perf_counter() - start)


async def full_flush(store: TwinStore, twins: list[DeviceTwin], properties: int) -> float:
    """Milliseconds to flush one reported change on every device."""
    for i, twin in enumerate(twins):
        touch(twin, i, properties)
        await store.save_twin(twin, durable=False)
    start = time.perf_counter()
    await store.flush()
    return (time.perf_counter() - start) * 1000


def tinydb_upserts(path: Path, twins: list[DeviceTwin], properties: int, seconds: float) -> float:
    """The baseline: every twin in one TinyDB file, default JSONStorage, one upsert per update."""
    db = TinyDB(path)
    try:
        db.insert_multiple(t.to_record() for t in twins)
        device = Query().device_id
        count, start = 0, time.perf_counter()
        deadline = start + seconds
        while time.perf_counter() < deadline:
            twin = twins[count % len(twins)]
            touch(twin, count, properties)
            db.upsert(twin.to_record(), device == twin.device_id)
            count += 1
        return count / (time.perf_counter() - start)
    finally:
        db.close()


async def measure(devices: int, properties: int, seconds: float, folder: Path) -> list[str]:
    twins = make_twins(devices, properties)
    async with TwinStore(folder / "store") as store:
        for twin in twins:  # every device has its file, as after the service's start
            await store.save_twin(twin, durable=False)
        await store.flush()
        durable = await saves_per_second(store, twins, properties, seconds, durable=True)
        behind = await saves_per_second(store, twins, properties, seconds, durable=False)
        flush_ms = await full_flush(store, twins, properties)
    baseline = await asyncio.to_thread(tinydb_upserts, folder / "all.json", twins, properties, seconds)
    return [
        f"{devices:,}",
        f"{durable:,.0f}",
        f"{behind:,.0f}",
        f"{flush_ms:,.1f}",
        f"{baseline:,.0f}",
        f"{durable / baseline:,.1f}x",
        f"{behind / baseline:,.0f}x",
    ]


def filesystem(folder: Path) -> str:
    """The type of the file system holding ``folder`` (longest matching mount point)."""
    best, kind = "", "unknown"
    for line in Path("/proc/mounts").read_text().splitlines():
        _, mount, fstype, *_ = line.split()
        if str(folder.resolve()).startswith(mount) and len(mount) > len(best):
            best, kind = mount, fstype
    return kind


async def main_async(args: argparse.Namespace) -> None:
    counts = [int(n) for n in args.devices.split(",")]
    base = Path(args.dir) if args.dir else Path(tempfile.gettempdir())
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgetwin-store-bench-", dir=base) as tmp:
        for devices in counts:
            print(f"  {devices:,} devices ...", flush=True)
            folder = Path(tmp) / str(devices)
            folder.mkdir()
            rows.append(await measure(devices, args.properties, args.seconds, folder))
    print()
    print(
        f"{args.properties} properties per device, {args.seconds:.0f} s per measurement, "
        f"folder on {filesystem(base)} ({base})"
    )
    print(f"machine: {machine()}")
    print()
    header = [
        "devices",
        "durable writes/s",
        "write-behind updates/s",
        "flush all dirty ms",
        "1 TinyDB file upserts/s",
        "durable / 1 file",
        "write-behind / 1 file",
    ]
    print(table(header, rows))
    print()
    print(
        "durable = TwinStore.save_twin(durable=True): atomic replace of the device's own file, file and "
        "folder fsync-ed; write-behind = save_twin(durable=False) with the flusher's writes (no fsync) "
        "included; 1 TinyDB file = TinyDB's default JSONStorage (whole file rewritten and fsync-ed) "
        "with an upsert per update."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--devices", default="10,100,1000", help="comma-separated device counts")
    parser.add_argument("--properties", type=int, default=4, help="properties per device (default 4)")
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds per measurement (default 2)")
    parser.add_argument("--dir", help="folder to write in (default: the system's temporary folder)")
    args = parser.parse_args()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
