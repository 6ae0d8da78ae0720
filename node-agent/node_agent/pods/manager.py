"""The pods bound to one node: the desired set from the caller, made to run, stored, reported.

``PodManager`` is what the node agent hosts (a gateway piece: ``await manager.run()``). The cloud
link calls ``apply`` with the full set of pods bound to the node (or ``put``/``delete`` for one),
with the ConfigMaps and Secrets they name; each change is stored durably before the call returns,
then carried out: a new pod is admitted (or rejected with its reasons in status) and started, a
changed one restarted, a removed one stopped within its grace period. ``on_status`` receives every
pod's status whenever it changes, and ``None`` once a deleted pod is gone. Restarted, the manager
brings back every stored pod (adopting containers that outlived it, where the runtime allows).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from node_agent.pods.clock import BackOff, PodClock
from node_agent.pods.errors import PodRejected
from node_agent.pods.podman import PodmanRuntime, PodmanSettings
from node_agent.pods.process import ProcessRuntime
from node_agent.pods.runtime import ContainerRuntime
from node_agent.pods.spec import BoundPod
from node_agent.pods.status import PodStatus, rejected_status
from node_agent.pods.store import PodStore
from node_agent.pods.supervisor import PodSupervisor, spec_hashes

__all__ = ["PodManager", "PodSettings", "StatusListener", "make_runtime"]

log = logging.getLogger(__name__)


class StatusListener(Protocol):
    def __call__(self, key: str, uid: str, status: PodStatus | None) -> None:
        """``status`` of pod ``key`` (``namespace/name``) with ``uid``; ``None`` when it is gone."""


@dataclass(frozen=True)
class PodSettings:
    """How a node runs pods. The defaults need nothing installed."""

    runtime: Literal["process", "podman"] = "process"
    podman: PodmanSettings = field(default_factory=PodmanSettings)
    backoff: BackOff = field(default_factory=BackOff)
    #: The node's address, reported as ``hostIP`` (and ``podIP`` of host-network pods).
    host_ip: str | None = None


def make_runtime(node: str, folder: Path, settings: PodSettings) -> ContainerRuntime:
    """The runtime the settings name (``RuntimeUnavailable`` if it cannot run here)."""
    if settings.runtime == "podman":
        return PodmanRuntime(node, folder / "podman", settings.podman)
    return ProcessRuntime(log_max_bytes=settings.podman.log_max_bytes)


class PodManager:
    """The pods of node ``node``, kept under ``data_dir/pods``; ``run()`` serves until cancelled."""

    def __init__(
        self,
        node: str,
        data_dir: Path,
        settings: PodSettings | None = None,
        *,
        on_status: StatusListener | None = None,
        runtime: ContainerRuntime | None = None,
        clock: PodClock | None = None,
    ) -> None:
        self.node = node
        self.settings = settings or PodSettings()
        self.folder = data_dir / "pods"
        self.store = PodStore(self.folder / "specs")
        self.runtime = runtime or make_runtime(node, self.folder, self.settings)
        self.clock = clock or PodClock()
        self.ready = asyncio.Event()
        self._listeners: list[StatusListener] = [on_status] if on_status is not None else []
        self._supervisors: dict[str, PodSupervisor] = {}
        self._rejected: dict[str, tuple[BoundPod, PodStatus]] = {}
        self._lock = asyncio.Lock()

    # -- the gateway piece -------------------------------------------------------------------

    async def run(self) -> None:
        """Bring back the stored pods, then serve until cancelled; on the way out stop the pods
        (``process``) or leave them running to be adopted (``podman``)."""
        # Pod folders hold Secrets' files: the agent's user only.
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            async with self._lock:
                stored = self.store.load()
                if self.runtime.survives_agent:
                    await self.runtime.remove_others({bound.pod.metadata.uid for bound in stored})
                for bound in stored:
                    await self._start(bound, adopt=True)
            self.ready.set()
            await asyncio.Event().wait()  # serve: the work happens in put/apply/delete and the pods' tasks
        finally:
            self.ready.clear()
            supervisors = list(self._supervisors.values())
            self._supervisors.clear()
            if self.runtime.survives_agent:
                await asyncio.gather(*(s.detach() for s in supervisors))
            else:
                await asyncio.shield(asyncio.gather(*(s.stop() for s in supervisors)))

    # -- what the cloud link calls -----------------------------------------------------------

    async def apply(self, desired: Iterable[BoundPod]) -> None:
        """Make the node's pods exactly ``desired``: add, update, delete (deletions run in parallel)."""
        wanted = {bound.pod.key: bound for bound in desired}
        gone = [key for key in self.keys() if key not in wanted]
        for bound in wanted.values():
            await self.put(bound)
        await asyncio.gather(*(self.delete(key) for key in gone))

    async def put(self, bound: BoundPod) -> None:
        """Add or update one pod; returns once it is stored (its containers start in the background)."""
        bound = _with_uid(bound)
        key = bound.pod.key
        async with self._lock:
            current = self._supervisors.get(key)
            rejected = self._rejected.get(key)
            old = current.bound if current else (rejected[0] if rejected else None)
            if (
                old is not None
                and old.pod.metadata.uid == bound.pod.metadata.uid
                and spec_hashes(old) == spec_hashes(bound)
            ):
                await self.store.put(bound)
                if current is not None:
                    current.bound = bound
                elif rejected is not None:
                    self._rejected[key] = (bound, rejected[1])
                return
            await self.store.put(bound)
            if current is not None:
                log.info("pod %s changed; restarting its containers", key)
                await self._stop(
                    key,
                    current,
                    report_gone=old is not None and old.pod.metadata.uid != bound.pod.metadata.uid,
                )
            self._rejected.pop(key, None)
            await self._start(bound)

    async def delete(self, key: str, grace: float | None = None) -> None:
        """Remove pod ``key``: forgotten durably, then stopped within ``grace`` (default: the spec's)."""
        async with self._lock:
            await self.store.remove(key)
            supervisor = self._supervisors.pop(key, None)
            rejected = self._rejected.pop(key, None)
        if supervisor is not None:
            await self._stop(key, supervisor, grace=grace, report_gone=True)
        elif rejected is not None:
            self._report(key, rejected[0].pod.metadata.uid, None)

    def add_listener(self, listener: StatusListener) -> None:
        """Also tell ``listener`` of every status from now on (``on_status`` is the first)."""
        self._listeners.append(listener)

    def keys(self) -> list[str]:
        return sorted({*self._supervisors, *self._rejected})

    def held(self) -> dict[str, BoundPod]:
        """Every pod the node holds (running or rejected), as last put: what a hello names."""
        held = {key: bound for key, (bound, _) in self._rejected.items()}
        held.update({key: supervisor.bound for key, supervisor in self._supervisors.items()})
        return held

    def status(self, key: str) -> PodStatus | None:
        if key in self._rejected:
            return self._rejected[key][1]
        supervisor = self._supervisors.get(key)
        return supervisor.status if supervisor else None

    async def logs(
        self,
        key: str,
        container: str | None = None,
        *,
        previous: bool = False,
        tail: int | None = None,
        follow: bool = False,
        timestamps: bool = False,
    ) -> AsyncIterator[bytes]:
        """A container's log lines as ``kubectl logs`` gives them (``LookupError`` naming what is missing)."""
        supervisor = self._supervisors.get(key)
        if supervisor is None:
            raise LookupError(f"pod {key} is not running on node {self.node}")
        names = list(supervisor.workers)
        if container is None:
            if len(names) > 1:
                raise LookupError(f"a container name must be specified for pod {key}, choose one of: {names}")
            container = names[0]
        if container not in supervisor.workers:
            raise LookupError(f"container {container} is not valid for pod {key}")
        async for line in supervisor.read_logs(
            container, previous=previous, tail=tail, follow=follow, timestamps=timestamps
        ):
            yield line

    # -- inside ------------------------------------------------------------------------------

    def _report(self, key: str, uid: str, status: PodStatus | None) -> None:
        for listener in self._listeners:
            try:
                listener(key, uid, status)
            except Exception:  # a listener's bug must not stop the pods
                log.exception("a pod status listener failed for %s", key)

    async def _start(self, bound: BoundPod, *, adopt: bool = False) -> None:
        key, uid = bound.pod.key, bound.pod.metadata.uid
        try:
            reasons = self.runtime.unsupported(bound.pod)
            if reasons:
                raise PodRejected(reasons)
        except PodRejected as exc:
            log.warning("pod %s rejected: %s", key, exc)
            status = rejected_status(
                "UnsupportedPodSpec",
                f"the {self.runtime.name} runtime of node {self.node} cannot run this pod: {exc}",
                now=self.clock.now(),
                host_ip=self.settings.host_ip,
            )
            self._rejected[key] = (bound, status)
            self._report(key, uid, status)
            return
        supervisor = PodSupervisor(
            bound,
            node=self.node,
            runtime=self.runtime,
            folder=self.folder / uid,
            clock=self.clock,
            backoff=self.settings.backoff,
            host_ip=self.settings.host_ip,
            on_status=lambda status: self._report(key, uid, status),
        )
        self._supervisors[key] = supervisor
        await supervisor.start(adopt=adopt)

    async def _stop(
        self, key: str, supervisor: PodSupervisor, *, grace: float | None = None, report_gone: bool
    ) -> None:
        if self._supervisors.get(key) is supervisor:
            del self._supervisors[key]
        await supervisor.stop(grace)
        with contextlib.suppress(OSError):
            await asyncio.to_thread(shutil.rmtree, supervisor.folder, True)
        if report_gone:
            self._report(key, supervisor.bound.pod.metadata.uid, None)


def _with_uid(bound: BoundPod) -> BoundPod:
    """A pod from the API always has a uid; one written by hand gets a stable one from its key."""
    if bound.pod.metadata.uid:
        return bound
    uid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"edgetwin:pod:{bound.pod.key}"))
    metadata = bound.pod.metadata.model_copy(update={"uid": uid})
    return bound.model_copy(update={"pod": bound.pod.model_copy(update={"metadata": metadata})})
