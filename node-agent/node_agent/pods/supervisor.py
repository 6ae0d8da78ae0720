"""One pod on this node: its containers' workers, its status, its logs.

A ``PodSupervisor`` turns a stored ``BoundPod`` into running containers (one ``ContainerWorker``
each, started together), resolves what each instance needs (env, mounts, ``$(VAR)`` expansion, a
log file), and folds the containers' states into the pod's status, sent to ``on_status`` once per
change (several changes in one loop iteration make one report). ``stop`` ends every container
gracefully; ``detach`` leaves them running for a runtime whose containers outlive the agent.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path

from node_agent.pods.clock import BackOff, PodClock
from node_agent.pods.container import ContainerWorker
from node_agent.pods.env import expand, resolve_env
from node_agent.pods.logs import ContainerLogs, read_log
from node_agent.pods.runtime import ContainerInstance, ContainerRuntime, Launch
from node_agent.pods.spec import BoundPod, Container
from node_agent.pods.status import PodStatus, pod_status
from node_agent.pods.volumes import mounts_for

__all__ = ["PodSupervisor", "spec_hashes"]

log = logging.getLogger(__name__)

_POD_FIELDS = ("volumes", "hostNetwork", "hostPID", "hostIPC", "securityContext")


def spec_hashes(bound: BoundPod) -> dict[str, str]:
    """Per container, a hash of everything that shapes its instances (its spec and the pod's)."""
    spec = bound.pod.spec.model_dump(mode="json", by_alias=True)
    shared = {key: spec.get(key) for key in _POD_FIELDS}
    hashes = {}
    for container in bound.pod.spec.containers:
        text = json.dumps([container.model_dump(mode="json", by_alias=True), shared], sort_keys=True)
        hashes[container.name] = hashlib.sha256(text.encode()).hexdigest()[:16]
    return hashes


class PodSupervisor:
    """Runs one pod's containers; ``on_status`` receives each new status."""

    def __init__(
        self,
        bound: BoundPod,
        *,
        node: str,
        runtime: ContainerRuntime,
        folder: Path,
        clock: PodClock,
        backoff: BackOff,
        host_ip: str | None,
        on_status: Callable[[PodStatus], None],
    ) -> None:
        self.bound = bound
        self.node = node
        self.folder = folder
        self.logs = ContainerLogs(folder / "logs")
        self._runtime = runtime
        self._clock = clock
        self._host_ip = host_ip
        self._pod_ip = runtime.pod_ip(bound.pod, host_ip)
        self._on_status = on_status
        self.hashes = spec_hashes(bound)
        self.status: PodStatus | None = None
        self._start_time: datetime | None = None
        self._dirty = False
        spec = bound.pod.spec
        pod_name = f"{bound.pod.metadata.name}_{bound.pod.metadata.namespace}({bound.pod.metadata.uid})"
        self.workers = {
            container.name: ContainerWorker(
                container,
                pod_name=pod_name,
                restart_policy=spec.restart_policy,
                grace_seconds=spec.termination_grace_period_seconds,
                runtime=runtime,
                launch=self._launcher(container),
                clock=clock,
                backoff=backoff,
                probe_host="127.0.0.1",
                on_change=self._changed,
            )
            for container in spec.containers
        }
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def _launcher(self, container: Container) -> Callable[[int], Launch]:
        def launch(instance: int) -> Launch:
            env = resolve_env(
                self.bound, container, node=self.node, host_ip=self._host_ip, pod_ip=self._pod_ip
            )
            return Launch(
                pod=self.bound.pod,
                container=container,
                instance=instance,
                env=env,
                command=[expand(part, env) for part in container.command],
                args=[expand(part, env) for part in container.args],
                log_path=self.logs.new_instance(container.name, instance),
                mounts=mounts_for(self.bound, container, self.folder) if container.volume_mounts else (),
                spec_hash=self.hashes[container.name],
            )

        return launch

    async def start(self, *, adopt: bool = False) -> None:
        """Start every container's worker; with ``adopt``, first take over instances left from
        before the agent restarted (only a pod restored from disk can have any)."""
        adopted: dict[str, ContainerInstance] = {}
        if adopt:
            adopted = await self._runtime.adopt(self.bound.pod, self.hashes)
        starts = [instance.started_at for instance in adopted.values()]
        self._start_time = min(starts) if starts else self._clock.now()
        for name, worker in self.workers.items():
            self._tasks[name] = asyncio.create_task(
                self._guard(worker, adopted.get(name)), name=f"container {name} of {self.bound.pod.key}"
            )
        self._changed()

    async def _guard(self, worker: ContainerWorker, adopted: ContainerInstance | None) -> None:
        try:
            await worker.run(adopted)
        except Exception:  # one broken container must not take the node's other pods down
            log.exception(
                "container %s of pod %s failed in the supervisor", worker.container.name, self.bound.pod.key
            )
            raise

    def _changed(self) -> None:
        if not self._dirty:
            self._dirty = True
            asyncio.get_running_loop().call_soon(self._report)

    def _report(self) -> None:
        self._dirty = False
        workers = self.workers.values()
        status = pod_status(
            [worker.status() for worker in workers],
            restart_policy=self.bound.pod.spec.restart_policy,
            done=all(worker.done for worker in workers),
            previous=self.status,
            now=self._clock.now(),
            host_ip=self._host_ip,
            pod_ip=self._pod_ip,
            start_time=self._start_time,
        )
        if status != self.status:
            self.status = status
            self._on_status(status)

    async def stop(self, grace: float | None = None) -> None:
        """Stop every container gracefully (together, as the kubelet does) and remove what is left."""
        await asyncio.gather(
            *(
                worker.stop(self._tasks[name], grace)
                for name, worker in self.workers.items()
                if name in self._tasks
            )
        )
        await self._runtime.remove(self.bound.pod)
        self._report()

    async def detach(self) -> None:
        """Stop supervising but leave the containers running (the agent stops; they are adopted later)."""
        await asyncio.gather(
            *(
                worker.detach(self._tasks[name])
                for name, worker in self.workers.items()
                if name in self._tasks
            )
        )

    async def read_logs(
        self, container: str, *, previous: bool, tail: int | None, follow: bool, timestamps: bool
    ) -> AsyncIterator[bytes]:
        worker = self.workers[container]
        instances = self.logs.instances(container)
        current = worker.instance.instance if worker.instance is not None else None
        if previous:
            older = [number for number in instances if current is None or number < current]
            if current is not None and worker.done:
                older = [number for number in instances if number < current]
            if not older:
                pod = self.bound.pod.metadata.name
                raise LookupError(f'previous terminated container "{container}" in pod "{pod}" not found')
            path, ended = self.logs.path(container, older[-1]), None
        else:
            if current is None:
                raise LookupError(
                    f'container "{container}" in pod "{self.bound.pod.metadata.name}" is waiting to start'
                )
            path, ended = self.logs.path(container, current), worker.ended
        async for line in read_log(
            path, tail=tail, timestamps=timestamps, follow=follow and not previous, ended=ended
        ):
            yield line
