"""The ``process`` runtime: each container's command runs as a supervised process of the agent.

For gateways without a container engine, and the zero-install default. The image name maps to
nothing: ``command`` + ``args`` are run as they are (``command`` is required, there is no image to
supply one), with the pod's env on top of the agent's ``PATH`` and locale, in ``workingDir`` (else the
agent's own). A process shares the host's filesystem, network and PIDs:
there is nothing to mount volumes into and nothing to enforce limits with, so pods that need
either are refused (``unsupported``). Each instance runs in a process group of its own, so a
signal reaches the children it forks, and dies with the agent (``PR_SET_PDEATHSIG``) so that a
restarted agent never finds a stray copy running; it restarts them instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from node_agent.pods.admission import common_reasons, container_context, is_service_account_mount
from node_agent.pods.errors import ContainerCreateFailed, ContainerStartFailed
from node_agent.pods.logs import DEFAULT_MAX_BYTES, LogWriter
from node_agent.pods.runtime import ContainerExit, ContainerInstance, ExecResult, Launch
from node_agent.pods.spec import Pod

__all__ = ["ProcessRuntime"]

_PR_SET_PDEATHSIG = 1
_PR_SET_NO_NEW_PRIVS = 38
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
#: Inherited from the agent so that commands are found and speak its locale; nothing else leaks in.
_INHERITED = ("PATH", "LANG", "LC_ALL", "TZ", "HOME")


def _child_setup(no_new_privileges: bool) -> None:
    # Runs in the child between fork and exec: die with the agent, never gain privileges.
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if no_new_privileges:
        _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)


class ProcessInstance:
    """One running command and the task that copies its output into the log."""

    def __init__(self, proc: asyncio.subprocess.Process, launch: Launch, writer: LogWriter) -> None:
        self._proc = proc
        self._env = dict(launch.env)
        self._cwd = launch.container.working_dir or None
        self._instance = launch.instance
        self._started = datetime.now(UTC)
        self._writer = writer
        self._copies = [
            asyncio.create_task(self._copy(proc.stdout, "stdout"), name=f"stdout of pid {proc.pid}"),
            asyncio.create_task(self._copy(proc.stderr, "stderr"), name=f"stderr of pid {proc.pid}"),
        ]
        self._exit: ContainerExit | None = None

    @property
    def container_id(self) -> str:
        return f"process://{self._proc.pid}"

    @property
    def image_id(self) -> str:
        return ""

    @property
    def started_at(self) -> datetime:
        return self._started

    @property
    def instance(self) -> int:
        return self._instance

    async def _copy(self, stream: asyncio.StreamReader | None, name: str) -> None:
        if stream is None:
            return
        while chunk := await stream.read(65536):
            self._writer.write(name, chunk)

    async def wait(self) -> ContainerExit:
        if self._exit is None:
            code = await self._proc.wait()
            # asyncio.wait, not gather: a cancelled waiter must not cancel the copies (and lose output).
            await asyncio.wait(self._copies)
            if self._exit is None:
                self._writer.close()
                finished = datetime.now(UTC)
                if code < 0:
                    self._exit = ContainerExit(128 - code, "Error", finished, signal=-code)
                else:
                    self._exit = ContainerExit(code, "Completed" if code == 0 else "Error", finished)
        return self._exit

    async def signal(self, signum: int) -> None:
        if self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signum)

    async def exec(self, command: Sequence[str], timeout: float) -> ExecResult:
        proc = await asyncio.create_subprocess_exec(
            *command,
            env=self._env,
            cwd=self._cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            async with asyncio.timeout(timeout):
                output, _ = await proc.communicate()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            raise
        return ExecResult(proc.returncode or 0, output)


class ProcessRuntime:
    """Runs containers as local processes; see the module docstring for what that can honour."""

    name = "process"
    survives_agent = False

    def __init__(self, *, log_max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.log_max_bytes = log_max_bytes

    def unsupported(self, pod: Pod) -> list[str]:
        reasons = common_reasons(pod)
        for container in pod.spec.containers:
            where = f"container {container.name}"
            if not container.command:
                reasons.append(f"{where}: the process runtime needs a command (an image supplies none here)")
            mounts = [
                m.name
                for m in container.volume_mounts
                if not is_service_account_mount(pod, m.name, m.mount_path)
            ]
            if mounts:
                reasons.append(f"{where}: the process runtime cannot mount volumes ({', '.join(mounts)})")
            if container.resources.limits:
                reasons.append(f"{where}: the process runtime cannot enforce resources.limits")
            context = container_context(pod, container)
            if context.read_only_root_filesystem:
                reasons.append(f"{where}: the process runtime cannot give a read-only root filesystem")
            wanted = {context.run_as_user, context.run_as_group} - {None}
            if wanted and os.geteuid() != 0 and wanted != {os.geteuid()}:
                reasons.append(f"{where}: runAsUser/runAsGroup need the agent to run as root")
            caps = (
                (container.security_context.model_extra or {}).get("capabilities")
                if container.security_context
                else None
            )
            if caps:
                reasons.append(f"{where}: the process runtime cannot change capabilities")
        return reasons

    def pod_ip(self, pod: Pod, host_ip: str | None) -> str | None:
        return host_ip

    async def start(self, launch: Launch) -> ContainerInstance:
        container = launch.container
        env = {key: os.environ[key] for key in _INHERITED if key in os.environ} | dict(launch.env)
        argv = [*launch.command, *launch.args]
        context = container_context(launch.pod, container)
        no_new_privileges = (
            (container.security_context.model_extra or {}).get("allowPrivilegeEscalation") is False
            if container.security_context
            else False
        )
        if container.working_dir and not await asyncio.to_thread(Path(container.working_dir).is_dir):
            raise ContainerCreateFailed(f"workingDir {container.working_dir} is not a folder on this node")
        launch.log_path.parent.mkdir(parents=True, exist_ok=True)
        writer = LogWriter(launch.log_path, self.log_max_bytes)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                env=env,
                cwd=container.working_dir or None,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
                preexec_fn=lambda: _child_setup(no_new_privileges),
                user=context.run_as_user,
                group=context.run_as_group,
            )
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            # SubprocessError: the child failed before exec and could not say how (its setup
            # raised, or it died while reporting an exec error): a start error all the same.
            writer.close()
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise ContainerStartFailed(f"cannot run {argv[0]!r}: {why}") from exc
        return ProcessInstance(proc, launch, writer)

    async def adopt(self, pod: Pod, spec_hashes: Mapping[str, str]) -> dict[str, ContainerInstance]:
        return {}

    async def remove(self, pod: Pod) -> None:
        return None

    async def remove_others(self, keep: set[str]) -> None:
        return None
