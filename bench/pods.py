"""Pod start latency per runtime, and what the pod supervisor costs in memory.

Why: a gateway runs a handful of pods beside its devices; starting one must feel immediate and
supervising twenty must not cost more memory than the rest of the agent (issue targets: request →
Running p99 < 1 s on podman, < 0.3 s on the process runtime; agent RSS ≤ 50 MB with 20 pods).

For each runtime (``process``, and ``podman`` when it is installed with a static busybox):

* **sequential**: 50 pods, one after another: ``PodManager.put`` → the status callback reports
  the pod ``Running``; p50/p99/max.
* **burst**: 50 pods put at once; per pod, put → ``Running``.
* **baseline** in the same run: the bare start of the same command without edgetwin, one after
  another: ``asyncio.create_subprocess_exec`` (process) or ``podman run --detach`` with the same
  flags and image (podman). The ratio sequential p50 / baseline p50 is the supervisor's overhead.
* **RSS**: a separate Python process hosting only a ``PodManager`` with 20 running pods reports its
  own resident memory (``VmRSS``; the pods' processes and podman's conmon are not in it), beside a
  bare Python with the same imports.

Then, with ``--stack`` (the default), the whole path (``pods_stack.py``): ``kubectl apply`` → the
pod ``Running`` in the API through ``edgetwin cloud`` and ``edgetwin node --pods``, and the node
agent's RSS with 100 devices and 20 pods, per runtime.

Podman runs on its own storage in a temporary folder, with an image made from Debian's static
busybox (no registry). Run: ``.venv/bin/python bench/pods.py [--pods 50] [--rss-pods 20]
[--runtime process,podman] [--no-stack]``. Every pod, container and folder is removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from _common import machine, percentile, table
from pods_stack import stack_run

from node_agent.pods import BoundPod, PodManager, PodmanSettings, PodSettings, PodStatus

IMAGE = "localhost/edgetwin-bench/busybox:1"
BUSYBOX = Path("/bin/busybox")
PODMAN_FLAGS = ["--runtime", "runc", "--cgroup-manager", "cgroupfs", "--events-backend", "file"]


def podman_storage(folder: Path) -> PodmanSettings | None:
    """Podman storage under ``folder`` holding the busybox image, or ``None`` without podman."""
    podman = shutil.which("podman")
    if podman is None or not BUSYBOX.is_file():
        return None
    folder.mkdir(parents=True)
    settings = PodmanSettings(root=folder / "storage", runroot=folder / "run")
    archive = folder / "rootfs.tar"
    applets = subprocess.run(
        [str(BUSYBOX), "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    with tarfile.open(archive, "w") as tar:
        for name in ("bin", "tmp"):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777
            tar.addfile(info)
        tar.add(BUSYBOX, "bin/busybox")
        for applet in applets:
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            if applet != "busybox":
                tar.addfile(link)
    subprocess.run(
        [*podman_base(settings), "import", "--quiet", str(archive), IMAGE], check=True, capture_output=True
    )
    return settings


def podman_base(settings: PodmanSettings) -> list[str]:
    return ["podman", *PODMAN_FLAGS, "--root", str(settings.root), "--runroot", str(settings.runroot)]


def remove_all(podman: PodmanSettings) -> None:
    subprocess.run(
        [*podman_base(podman), "rm", "--all", "--force", "--time", "0"], capture_output=True, check=False
    )


def pod(name: str) -> BoundPod:
    container = {"name": "app", "image": IMAGE, "command": ["sleep", "100000"]}
    spec = {"containers": [container], "terminationGracePeriodSeconds": 0}
    return BoundPod.model_validate(
        {"pod": {"metadata": {"name": name, "uid": f"bench-{name}"}, "spec": spec}}
    )


class Clock:
    """Put times and the moment each pod was first reported Running."""

    def __init__(self) -> None:
        self.put: dict[str, float] = {}
        self.running: dict[str, float] = {}
        self.changed = asyncio.Event()

    def __call__(self, key: str, uid: str, status: PodStatus | None) -> None:
        if status is not None and status.phase == "Running" and key not in self.running:
            self.running[key] = time.perf_counter()
            self.changed.set()

    async def until(self, keys: list[str]) -> list[float]:
        while any(key not in self.running for key in keys):
            self.changed.clear()
            await self.changed.wait()
        return [self.running[key] - self.put[key] for key in keys]


async def latencies(
    runtime: str, folder: Path, podman: PodmanSettings | None, count: int
) -> dict[str, list[float]]:
    clock = Clock()
    settings = PodSettings(runtime=runtime, podman=podman or PodmanSettings())  # type: ignore[arg-type]
    manager = PodManager("bench", folder / runtime, settings, on_status=clock)
    task = asyncio.create_task(manager.run())
    await manager.ready.wait()
    results: dict[str, list[float]] = {"sequential": [], "burst": []}
    try:
        for i in range(count):
            bound = pod(f"seq-{i}")
            clock.put[bound.pod.key] = time.perf_counter()
            await manager.put(bound)
            results["sequential"] += await clock.until([bound.pod.key])
        await manager.apply([])
        burst = [pod(f"burst-{i}") for i in range(count)]
        start = time.perf_counter()
        for bound in burst:
            clock.put[bound.pod.key] = start
        await asyncio.gather(*(manager.put(bound) for bound in burst))
        results["burst"] = await clock.until([bound.pod.key for bound in burst])
        await manager.apply([])
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return results


async def baseline(runtime: str, podman: PodmanSettings | None, count: int) -> list[float]:
    times = []
    for i in range(count):
        start = time.perf_counter()
        if runtime == "process":
            proc = await asyncio.create_subprocess_exec("sleep", "100000", start_new_session=True)
            times.append(time.perf_counter() - start)
            proc.kill()
            await proc.wait()
        else:
            assert podman is not None
            command = [
                *podman_base(podman),
                "run",
                "--detach",
                "--pull=never",
                "--network",
                "none",
                "--name",
                f"b{i}",
            ]
            command += [
                "--ulimit",
                "nofile=1024:1024",
                "--ulimit",
                "nproc=4096:4096",
                IMAGE,
                "sleep",
                "100000",
            ]
            proc = await asyncio.create_subprocess_exec(*command, stdout=subprocess.DEVNULL)
            await proc.wait()
            times.append(time.perf_counter() - start)
    if runtime == "podman" and podman is not None:
        await asyncio.to_thread(remove_all, podman)
    return times


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def rss_child(runtime: str, folder: Path, count: int, podman: PodmanSettings | None) -> None:
    """In its own process: host ``count`` running pods, print this process's RSS as JSON."""
    clock = Clock()
    settings = PodSettings(runtime=runtime, podman=podman or PodmanSettings())  # type: ignore[arg-type]
    manager = PodManager("bench-rss", folder, settings, on_status=clock)
    task = asyncio.create_task(manager.run())
    await manager.ready.wait()
    pods = [pod(f"rss-{i}") for i in range(count)]
    for bound in pods:
        clock.put[bound.pod.key] = time.perf_counter()
        await manager.put(bound)
    await clock.until([bound.pod.key for bound in pods])
    print(json.dumps({"rss_kb": rss_kb()}), flush=True)
    await manager.apply([])
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def rss_of(runtime: str, folder: Path, count: int, podman: PodmanSettings | None) -> float:
    command = [
        sys.executable,
        __file__,
        "--rss-child",
        runtime,
        "--rss-pods",
        str(count),
        "--dir",
        str(folder),
    ]
    if podman is not None:
        command += ["--podman-root", str(podman.root), "--podman-runroot", str(podman.runroot)]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return float(json.loads(out.strip().splitlines()[-1])["rss_kb"]) / 1024


def bare_rss() -> float:
    code = "import asyncio, pydantic, node_agent.pods, pathlib; print(open('/proc/self/status').read())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    line = next(line for line in out.splitlines() if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def ms(values: list[float], fraction: float) -> str:
    return f"{percentile(sorted(values), fraction) * 1000:.0f}"


async def main_async(args: argparse.Namespace) -> None:
    print(f"# pods: {machine()}, load average {os.getloadavg()[0]:.2f} at start")
    with tempfile.TemporaryDirectory(prefix="edgetwin-bench-pods-") as tmp:
        folder = Path(tmp)
        podman = podman_storage(folder / "podman") if "podman" in args.runtime else None
        rows, rss_rows = [], []
        for runtime in args.runtime:
            if runtime == "podman" and podman is None:
                print("podman (with /bin/busybox) is not installed: skipping the podman runtime")
                continue
            base = await baseline(runtime, podman, args.pods)
            found = await latencies(runtime, folder, podman, args.pods)
            for kind in ("sequential", "burst"):
                values = found[kind]
                ratio = percentile(sorted(values), 0.5) / percentile(sorted(base), 0.5)
                rows.append([runtime, kind, str(len(values)), ms(values, 0.5), ms(values, 0.99),
                             f"{max(values) * 1000:.0f}", ms(base, 0.5), ms(base, 0.99),
                             f"{ratio:.2f}" if kind == "sequential" else ""])  # fmt: skip
            rss_rows.append(
                [runtime, str(args.rss_pods), f"{rss_of(runtime, folder / 'rss', args.rss_pods, podman):.1f}"]
            )
        print(table(["runtime", "start", "pods", "p50 ms", "p99 ms", "max ms", "bare p50 ms", "bare p99 ms",
                     "p50 / bare"], rows))  # fmt: skip
        print()
        print(f"bare Python with the same imports: {bare_rss():.1f} MB RSS")
        print(table(["runtime", "pods running", "agent RSS MB"], rss_rows))
        if args.stack:
            whole_stack(args, folder, podman)
        print(f"load average {os.getloadavg()[0]:.2f} at the end")
        if podman is not None:
            await asyncio.to_thread(remove_all, podman)


def whole_stack(args: argparse.Namespace, folder: Path, podman: PodmanSettings | None) -> None:
    rows, rss_rows = [], []
    for runtime in args.runtime:
        if runtime == "podman" and podman is None:
            continue
        print(f"# the whole stack on {runtime}: load average {os.getloadavg()[0]:.2f}", flush=True)
        storage = podman.root.parent if runtime == "podman" and podman and podman.root else None
        image = IMAGE if runtime == "podman" else "none"
        with stack_run(folder / f"stack-{runtime}", runtime, storage) as run:
            base = run.kubectl_baseline(args.pods)
            applied = run.apply_latencies(image, args.pods)
            created = run.create_latencies(image, args.pods)
            run.delete_pods()
            idle, devices, loaded = run.rss(image, 100, args.rss_pods)
            run.delete_pods()
        base_p50 = percentile(sorted(base), 0.5)
        for kind, values in (("kubectl apply", applied), ("API create", created)):
            ratio = percentile(sorted(values), 0.5) / base_p50
            rows.append([runtime, kind, str(len(values)), ms(values, 0.5), ms(values, 0.99),
                         f"{max(values) * 1000:.0f}", ms(base, 0.5), f"{ratio:.2f}"])  # fmt: skip
        rss_rows.append([runtime, f"{idle:.1f}", f"{devices:.1f}", f"{loaded:.1f}"])
    print(table(["runtime", "from", "pods", "→ Running p50 ms", "p99 ms", "max ms", "kubectl apply cm p50 ms",
                 "p50 / kubectl"], rows))  # fmt: skip
    print(table(["runtime", "node RSS idle MB", "+100 devices MB", f"+{args.rss_pods} pods MB"], rss_rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--pods", type=int, default=50, help="pods per latency series (50)")
    parser.add_argument("--rss-pods", type=int, default=20, help="pods running while RSS is read (20)")
    parser.add_argument("--runtime", type=lambda v: v.split(","), default=["process", "podman"])
    parser.add_argument(
        "--stack",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure the whole stack: kubectl apply → Running, node RSS with devices (on)",
    )
    parser.add_argument("--rss-child", help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--podman-root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--podman-runroot", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        podman = (
            PodmanSettings(root=args.podman_root, runroot=args.podman_runroot) if args.podman_root else None
        )
        asyncio.run(rss_child(args.rss_child, args.dir, args.rss_pods, podman))
    else:
        asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
