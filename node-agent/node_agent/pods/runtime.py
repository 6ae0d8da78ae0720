"""The interface between a pod's supervisor and whatever runs its containers.

A runtime starts one container instance from a ``Launch`` (everything resolved: env, command,
mounts, log path) and hands back a ``ContainerInstance`` to wait on, signal and exec into. It says
up front which parts of a pod spec it cannot honour (``unsupported``), so that a pod is rejected
whole rather than half-run. Restart policy, back-off, probes, status and logs' retention belong to
the supervisor, the same for every runtime. Two runtimes exist: ``process`` and ``podman``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from node_agent.pods.spec import Container, Pod

__all__ = ["ContainerExit", "ContainerInstance", "ContainerRuntime", "ExecResult", "Launch", "Mount"]


@dataclass(frozen=True)
class Mount:
    """A host path made visible inside the container."""

    source: Path
    target: str
    read_only: bool = False


@dataclass(frozen=True)
class Launch:
    """One container instance to start, with everything resolved by the supervisor."""

    pod: Pod
    container: Container
    #: Restart count of this instance (0 for the first); runtimes label containers with it.
    instance: int
    env: Mapping[str, str]
    #: ``command`` and ``args`` after ``$(VAR)`` expansion; empty means "the image's".
    command: Sequence[str]
    args: Sequence[str]
    log_path: Path
    mounts: Sequence[Mount] = field(default_factory=tuple)
    #: Changes when the container's spec does; a runtime that adopts instances compares it.
    spec_hash: str = ""


@dataclass(frozen=True)
class ContainerExit:
    exit_code: int
    #: ``Completed``, ``Error``, ``OOMKilled`` or ``StartError``, as Kubernetes reports them.
    reason: str
    finished_at: datetime
    signal: int | None = None
    message: str | None = None


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    output: bytes


class ContainerInstance(Protocol):
    """One running instance of a container."""

    @property
    def container_id(self) -> str:
        """``podman://ID`` or ``process://PID``: what status shows as ``containerID``."""
        ...

    @property
    def image_id(self) -> str: ...

    @property
    def started_at(self) -> datetime: ...

    @property
    def instance(self) -> int:
        """The restart count this instance was started as."""
        ...

    async def wait(self) -> ContainerExit:
        """Return when the instance has exited (at once if it has); may be called more than once."""
        ...

    async def signal(self, signum: int) -> None:
        """Send a signal to the instance's main process (nothing if it has gone)."""
        ...

    async def exec(self, command: Sequence[str], timeout: float) -> ExecResult:
        """Run ``command`` beside the instance (its env, working dir and namespaces); raise
        ``TimeoutError`` after ``timeout`` loop seconds."""
        ...


class ContainerRuntime(Protocol):
    """Runs container instances for the pods of one node."""

    #: ``process`` or ``podman``: the node setting that chose it.
    name: str
    #: Whether instances keep running while the agent is down (and are adopted when it returns);
    #: if not, the agent stops its pods gracefully when it stops, and restarts them when it starts.
    survives_agent: bool

    def unsupported(self, pod: Pod) -> list[str]:
        """Every part of ``pod`` this runtime cannot honour, one reason each (empty: runnable)."""
        ...

    def pod_ip(self, pod: Pod, host_ip: str | None) -> str | None:
        """The pod's address as status reports it (``None`` for a pod with no network)."""
        ...

    async def start(self, launch: Launch) -> ContainerInstance:
        """Start one instance; raise a ``node_agent.pods.errors.PodError`` naming why it could not."""
        ...

    async def adopt(self, pod: Pod, spec_hashes: Mapping[str, str]) -> dict[str, ContainerInstance]:
        """Instances of ``pod``'s containers left from before the agent restarted, by container name.

        Only instances whose spec hash matches ``spec_hashes`` are returned (others are removed); an
        instance that has exited since is returned too, and its ``wait`` answers at once."""
        ...

    async def remove(self, pod: Pod) -> None:
        """Remove what is left of ``pod`` once its containers have stopped for good."""
        ...

    async def remove_others(self, keep: set[str]) -> None:
        """Stop and remove instances of pods (by uid) not in ``keep``: left over from deleted pods."""
        ...
