"""cloud-sync's CPU per status write through ``KubeApi.call``, alone: the asyncio transport
(``cloud_sync.kube_http``, one pooled aiohttp session) against the ``kubernetes`` client's urllib3
threads, the baseline, measured in the same run.

Why: a status write's cost in cloud-sync is what bounds the devices one process ingests
(``bench/sync.py`` part 3); this isolates the request itself from the reports' intake and the
watch. ``edgetwin apiserver`` runs in its own process; this process sends Device status merge
patches as ``StatusWriter`` does (JSON encoded, the answer decoded), ``--in-flight`` at a time,
rounds of each transport alternating. CPU is this process's own (``getrusage``: the loop and the
client's threads), so other work on the machine changes the rates, not the CPU per patch.

    .venv/bin/python bench/kube_transport.py [--patches 3000] [--in-flight 16] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import shutil
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

from _common import machine, table
from apiserver import start_server

from cloud_sync.kube import MERGE_PATCH, KubeApi
from cloud_sync.resources import DEVICES


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def device(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "devices.kubeedge.io/v1beta1",
        "kind": "Device",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "deviceModelRef": {"name": "thermostat-model"},
            "nodeName": "edge-node-1",
            "properties": [{"name": "temperature", "reportToCloud": True, "reportCycle": 1000}],
        },
    }


async def patches(api: KubeApi, transport: str, names: list[str], count: int) -> tuple[float, float]:
    """Send ``count`` status patches, one stream per name; CPU seconds and wall seconds."""

    async def stream(name: str, share: int) -> None:
        path = DEVICES.path("default", name, "status")
        for step in range(share):
            twin = {
                "propertyName": "temperature",
                "reported": {"value": f"{step}.5", "metadata": {"timestamp": str(step)}},
            }
            body = {"status": {"twins": [twin]}}
            if transport == "aiohttp":
                await api.call("PATCH", path, body=body, content_type=MERGE_PATCH)
            else:  # what KubeApi.call did before: the request in the client's thread pool
                await api.run(partial(api.request, "PATCH", path, body=body, content_type=MERGE_PATCH))

    share = count // len(names)
    started_cpu, started = cpu(), time.monotonic()
    await asyncio.gather(*(stream(name, share) for name in names))
    return cpu() - started_cpu, time.monotonic() - started


async def main(args: argparse.Namespace) -> None:
    print(machine(), flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="edgetwin-bench-transport-"))
    server, _ = start_server(workdir / "api")
    try:
        api = KubeApi.from_config(workdir / "api" / "kubeconfig", workers=args.in_flight)
        names = [f"transport-{n:02d}" for n in range(args.in_flight)]
        for name in names:
            await api.call("POST", DEVICES.path("default"), body=device(name))
        results: dict[str, list[tuple[float, float]]] = {"aiohttp": [], "threads": []}
        for _ in range(args.rounds):
            for transport in ("threads", "aiohttp"):
                await patches(api, transport, names, len(names) * 10)  # connections open, code warm
                results[transport].append(await patches(api, transport, names, args.patches))
        await api.aclose()
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)
    per_patch = {t: min(c for c, _ in runs) / args.patches for t, runs in results.items()}
    rows = [
        [
            "kubernetes client, urllib3 threads (baseline)"
            if t == "threads"
            else "asyncio transport (aiohttp)",
            f"{per_patch[t] * 1e6:.0f}",
            " / ".join(f"{args.patches / wall:,.0f}" for _, wall in results[t]),
            f"{per_patch['threads'] / per_patch[t]:.2f}x",
        ]
        for t in ("threads", "aiohttp")
    ]
    print(f"\nstatus merge patches through KubeApi, {args.in_flight} in flight, {args.patches:,} a round")
    print(
        table(
            [
                "transport",
                "client CPU µs per patch (best round)",
                "patches/s each round",
                "less CPU than the baseline",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--patches", type=int, default=3000, help="status patches per round and transport (3000)"
    )
    parser.add_argument("--in-flight", type=int, default=16, help="requests in flight at once (16)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds, each transport once per round (2)")
    arguments = parser.parse_args()
    if arguments.patches < arguments.in_flight or arguments.in_flight < 1 or arguments.rounds < 1:
        parser.error("--patches must be at least --in-flight, and both and --rounds at least 1")
    asyncio.run(main(arguments))
