"""The ``podman`` runtime: each container instance is a podman container (runc), found again by label.

Every call is the podman command line with the flags that work on these gateways (``--runtime
runc``, ``--cgroup-manager cgroupfs``, ``--events-backend file``, explicit ulimits: NOTES.md
"Containers"), so nothing depends on the host's containers.conf. An instance's end is awaited
without polling and without a helper process: podman's conmon monitors the container and exits
after it, and a pidfd on conmon becomes readable at that moment; ``podman inspect`` then gives the
exit code. Containers carry labels (node, pod uid, container, instance, spec hash), so an agent
that restarts adopts the containers that kept running and removes those of deleted pods.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from node_agent.pods.admission import common_reasons, container_context
from node_agent.pods.errors import (
    ContainerCreateFailed,
    ContainerStartFailed,
    ImagePullFailed,
    RuntimeUnavailable,
)
from node_agent.pods.logs import DEFAULT_MAX_BYTES
from node_agent.pods.podman_args import (
    LABEL_CONTAINER,
    LABEL_INSTANCE,
    LABEL_NODE,
    LABEL_SPEC,
    LABEL_UID,
    RunOptions,
    container_name,
    cpus,
    memory_bytes,
    run_command,
)
from node_agent.pods.runtime import ContainerExit, ContainerInstance, ExecResult, Launch
from node_agent.pods.spec import Pod

__all__ = ["PodmanRuntime", "PodmanSettings"]

log = logging.getLogger(__name__)

_NOT_FOUND = ("image not known", "no such image", "image not found")
_START_FAILED = ("OCI runtime", "runc create failed", "executable file not found", "permission denied")


@dataclass(frozen=True)
class PodmanSettings:
    binary: str = "podman"
    #: Storage folders (``--root``/``--runroot``); ``None`` uses podman's defaults, where
    #: ``podman ps`` on the gateway shows the pods' containers.
    root: Path | None = None
    runroot: Path | None = None
    ulimits: tuple[str, ...] = ("nofile=1024:1024", "nproc=4096:4096")
    pull_timeout: float = 300.0
    log_max_bytes: int = DEFAULT_MAX_BYTES
    extra_args: tuple[str, ...] = field(default_factory=tuple)


def _parse_time(text: str) -> datetime:
    """podman's timestamps (``2026-12-01T15:42:04.136633358Z`` or ``…+00:00``) to a datetime."""
    text = text.strip().replace("Z", "+00:00")
    if "." in text:
        head, rest = text.split(".", 1)
        digits = "".join(c for c in rest if c.isdigit())
        zone = rest[len(digits) :]
        text = f"{head}.{digits[:6]}{zone}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return datetime.now(UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class PodmanInstance:
    """One podman container; ``wait`` watches its conmon through a pidfd."""

    def __init__(
        self,
        runtime: PodmanRuntime,
        name: str,
        container_id: str,
        conmon_pid: int,
        instance: int,
        started_at: datetime,
        image_id: str = "",
    ) -> None:
        self._runtime = runtime
        self._name = name
        self._id = container_id
        self._conmon = conmon_pid
        self._instance = instance
        self._started = started_at
        self._image_id = image_id
        self._exit: ContainerExit | None = None
        self._lock = asyncio.Lock()

    @property
    def container_id(self) -> str:
        return f"podman://{self._id}"

    @property
    def image_id(self) -> str:
        return self._image_id

    @property
    def started_at(self) -> datetime:
        return self._started

    @property
    def instance(self) -> int:
        return self._instance

    async def _conmon_exit(self) -> None:
        if self._conmon <= 0:
            return  # found exited (adopted after the agent restarted)
        try:
            fd = os.pidfd_open(self._conmon)
        except OSError:  # conmon is gone already: the container has exited
            return
        loop = asyncio.get_running_loop()
        gone = asyncio.Event()
        loop.add_reader(fd, gone.set)
        try:
            await gone.wait()
        finally:
            loop.remove_reader(fd)
            os.close(fd)

    async def wait(self) -> ContainerExit:
        async with self._lock:
            if self._exit is None:
                await self._conmon_exit()
                state = (await self._runtime.inspect(self._name)).get("State", {})
                code = int(state.get("ExitCode", -1))
                finished = (
                    _parse_time(state.get("FinishedAt", "")) if state.get("FinishedAt") else datetime.now(UTC)
                )
                reason = "OOMKilled" if state.get("OOMKilled") else ("Completed" if code == 0 else "Error")
                message = state.get("Error") or None
                self._exit = ContainerExit(code, reason, finished, message=message)
        return self._exit

    async def signal(self, signum: int) -> None:
        if self._exit is None:
            await self._runtime.podman("kill", "--signal", str(signum), self._name)

    async def exec(self, command: Sequence[str], timeout: float) -> ExecResult:
        code, out, err = await self._runtime.podman("exec", self._name, *command, timeout=timeout)
        return ExecResult(code, out + err)


class PodmanRuntime:
    """Runs containers with podman and runc; see the module docstring."""

    name = "podman"
    survives_agent = True

    def __init__(self, node: str, state_dir: Path, settings: PodmanSettings | None = None) -> None:
        self.node = node
        self.settings = settings or PodmanSettings()
        self._state = state_dir
        if shutil.which(self.settings.binary) is None:
            raise RuntimeUnavailable(f"podman is not installed ({self.settings.binary} not found on PATH)")
        flags = ["--runtime", "runc", "--cgroup-manager", "cgroupfs", "--events-backend", "file"]
        if self.settings.root is not None:
            flags += ["--root", str(self.settings.root)]
        if self.settings.runroot is not None:
            flags += ["--runroot", str(self.settings.runroot)]
        self._global = [self.settings.binary, *flags, *self.settings.extra_args]

    async def podman(self, *args: str, timeout: float = 60.0) -> tuple[int, bytes, bytes]:
        """Run one podman command; its exit code, stdout and stderr (``TimeoutError`` past ``timeout``)."""
        proc = await asyncio.create_subprocess_exec(
            *self._global,
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(timeout):
                out, err = await proc.communicate()
        except (TimeoutError, asyncio.CancelledError):
            # Timed out or no longer wanted (a probe cancelled, the agent stopping): never left
            # running unreaped behind the caller.
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise
        return proc.returncode or 0, out, err

    async def inspect(self, name: str) -> dict[str, Any]:
        code, out, _ = await self.podman("container", "inspect", name)
        if code != 0:
            return {}
        found = json.loads(out or b"[]")
        return found[0] if found else {}

    def unsupported(self, pod: Pod) -> list[str]:
        reasons = common_reasons(pod)
        spec = pod.spec
        if not spec.host_network and len(spec.containers) > 1:
            reasons.append(
                "several containers need hostNetwork: true here (pods without it have no shared network)"
            )
        for container in spec.containers:
            where = f"container {container.name}"
            if not container.image:
                reasons.append(f"{where}: an image is required")
            for name, value in container.resources.limits.items():
                if name not in ("memory", "cpu"):
                    reasons.append(f"{where}: resources.limits {name} is not supported (memory and cpu are)")
                    continue
                try:
                    memory_bytes(value) if name == "memory" else cpus(value)
                except ValueError as exc:
                    reasons.append(f"{where}: resources.limits.{name}: {exc}")
            probes = [container.liveness_probe, container.readiness_probe, container.startup_probe]
            if not spec.host_network and any(p and (p.http_get or p.tcp_socket) for p in probes):
                reasons.append(
                    f"{where}: httpGet/tcpSocket probes need hostNetwork: true (the pod has no network)"
                )
            if not spec.host_network and any(
                port.model_extra and port.model_extra.get("hostPort") for port in container.ports
            ):
                reasons.append(f"{where}: hostPort needs hostNetwork: true")
            context = container_context(pod, container)
            if context.run_as_non_root and not context.run_as_user:
                reasons.append(f"{where}: runAsNonRoot needs a non-zero runAsUser")
        return reasons

    def pod_ip(self, pod: Pod, host_ip: str | None) -> str | None:
        return host_ip if pod.spec.host_network else None

    async def _ensure_image(self, image: str, policy: str) -> None:
        present = (await self.podman("image", "exists", image))[0] == 0
        if policy == "Never" or (present and policy == "IfNotPresent"):
            if not present:
                raise ImagePullFailed(
                    f'Container image "{image}" is not present with pull policy of Never',
                    reason="ErrImageNeverPull",
                )
            return
        try:
            code, _, err = await self.podman("pull", "--quiet", image, timeout=self.settings.pull_timeout)
        except TimeoutError:
            code, err = 1, b"pull timed out"
        if code == 0:
            return
        message = err.decode(errors="replace").strip().splitlines()[-1:] or ["pull failed"]
        if present:
            # Offline autonomy: a gateway cut off from its registry runs the image it has.
            log.warning("pulling %s failed (%s); running the local copy", image, message[0])
            return
        raise ImagePullFailed(f'failed to pull image "{image}": {message[0]}')

    async def start(self, launch: Launch) -> ContainerInstance:
        container = launch.container
        name = container_name(launch.pod.metadata.uid, container.name)
        pidfile = self._state / f"{name}.conmon.pid"
        self._state.mkdir(parents=True, exist_ok=True)
        launch.log_path.parent.mkdir(parents=True, exist_ok=True)
        options = RunOptions(
            self.node, launch.spec_hash, self.settings.log_max_bytes, str(pidfile), self.settings.ulimits
        )
        if launch.instance > 0:
            await self.podman("rm", "--force", "--time", "0", name)
        if container.pull_policy() == "Always":
            await self._ensure_image(container.image, "Always")
        args = run_command(launch, options)
        for attempt in range(3):
            code, out, err = await self.podman(*args)
            if code == 0:
                break
            error = err.decode(errors="replace").strip()
            if any(text in error for text in _NOT_FOUND) and attempt == 0:
                await self._ensure_image(container.image, container.pull_policy())
            elif "already in use" in error and attempt < 2:
                await self.podman("rm", "--force", "--time", "0", name)
            elif any(text in error for text in _START_FAILED):
                await self.podman("rm", "--force", "--time", "0", name)
                raise ContainerStartFailed(error.removeprefix("Error: "))
            else:
                raise ContainerCreateFailed(error.removeprefix("Error: ") or f"podman run exited with {code}")
        else:
            raise ContainerCreateFailed(err.decode(errors="replace").strip() or "podman run failed")
        conmon = int(pidfile.read_text().strip() or 0)
        return PodmanInstance(self, name, out.decode().strip(), conmon, launch.instance, datetime.now(UTC))

    async def _listed(self, label: str) -> list[dict[str, Any]]:
        code, out, err = await self.podman("ps", "--all", "--format", "json", "--filter", f"label={label}")
        if code != 0:
            raise RuntimeUnavailable(f"podman ps failed: {err.decode(errors='replace').strip()}")
        listed: list[dict[str, Any]] = json.loads(out or b"[]") or []
        return listed

    async def adopt(self, pod: Pod, spec_hashes: Mapping[str, str]) -> dict[str, ContainerInstance]:
        found: dict[str, ContainerInstance] = {}
        for entry in await self._listed(f"{LABEL_UID}={pod.metadata.uid}"):
            labels = entry.get("Labels") or {}
            name = (entry.get("Names") or [""])[0]
            wanted = spec_hashes.get(labels.get(LABEL_CONTAINER, ""))
            if wanted is None or labels.get(LABEL_SPEC) != wanted:
                await self.podman("rm", "--force", "--time", "0", name)
                continue
            details = await self.inspect(name)
            state = details.get("State", {})
            # An exited container's recorded conmon pid may belong to another process by now.
            conmon = int(state.get("ConmonPid") or 0) if state.get("Status") == "running" else 0
            instance = PodmanInstance(
                self,
                name,
                details.get("Id", ""),
                conmon,
                int(labels.get(LABEL_INSTANCE, "0")),
                _parse_time(state.get("StartedAt", "")),
                details.get("Image", ""),
            )
            found[labels[LABEL_CONTAINER]] = instance
        return found

    async def remove(self, pod: Pod) -> None:
        for entry in await self._listed(f"{LABEL_UID}={pod.metadata.uid}"):
            await self.podman("rm", "--force", "--time", "0", entry.get("Id", ""))
        for pidfile in self._state.glob(f"{container_name(pod.metadata.uid, '')}*.conmon.pid"):
            pidfile.unlink(missing_ok=True)

    async def remove_others(self, keep: set[str]) -> None:
        for entry in await self._listed(f"{LABEL_NODE}={self.node}"):
            uid = (entry.get("Labels") or {}).get(LABEL_UID)
            if uid not in keep:
                log.info(
                    "removing container %s of a pod no longer on this node", (entry.get("Names") or ["?"])[0]
                )
                await self.podman("rm", "--force", "--time", "0", entry.get("Id", ""))
