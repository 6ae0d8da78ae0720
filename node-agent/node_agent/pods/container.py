"""One container of a pod, kept running as its restart policy says: start, probe, restart, stop.

``ContainerWorker.run`` is the kubelet's loop for a single container: start an instance (image,
config and start errors become waiting reasons with their message, retried with back-off), run its
probes (startup first; then liveness, whose failure kills the instance, and readiness, which sets
``ready``), wait for it to exit, and restart it when the policy says so after Kubernetes' crash
back-off (``CrashLoopBackOff`` while waiting). ``stop`` ends it gracefully (SIGTERM, then SIGKILL
after the grace period). Every change calls ``on_change``; the pod derives its status from
``status()``.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from datetime import datetime

from node_agent.pods.clock import BackOff, CrashBackOff, PodClock
from node_agent.pods.errors import ContainerStartFailed, ImagePullFailed, PodError
from node_agent.pods.probes import ProbeLoop, check
from node_agent.pods.runtime import ContainerExit, ContainerInstance, ContainerRuntime, Launch
from node_agent.pods.spec import Container, Probe
from node_agent.pods.status import ContainerState, ContainerStatus, Running, Terminated, Waiting, rfc3339

__all__ = ["ContainerWorker"]

log = logging.getLogger(__name__)


#: Pod seconds a failed pull shows ErrImagePull before ImagePullBackOff (the kubelet's sync period).
_PULL_ERROR_SHOWN = 1.0


class _Finished(Exception):
    """The container will not be started again (a start error under restartPolicy Never)."""


def _restarts(policy: str, exit_code: int) -> bool:
    return policy == "Always" or (policy == "OnFailure" and exit_code != 0)


class ContainerWorker:
    """Runs one container of a pod; ``launch(instance)`` builds each instance's ``Launch``."""

    def __init__(
        self,
        container: Container,
        *,
        pod_name: str,
        restart_policy: str,
        grace_seconds: float,
        runtime: ContainerRuntime,
        launch: Callable[[int], Launch],
        clock: PodClock,
        backoff: BackOff,
        probe_host: str,
        on_change: Callable[[], None],
    ) -> None:
        self.container = container
        self._pod_name = pod_name
        self._policy = restart_policy
        self._grace = grace_seconds
        self._runtime = runtime
        self._launch = launch
        self._clock = clock
        self._backoff = CrashBackOff(backoff)
        self._pull_backoff = CrashBackOff(backoff)
        self._probe_host = probe_host
        self._on_change = on_change
        self.restart_count = 0
        self.instance: ContainerInstance | None = None
        self._starting: asyncio.Future[ContainerInstance] | None = None
        #: Set when the current instance has ended (logs -f of it stops there).
        self.ended = asyncio.Event()
        self._state = ContainerState(waiting=Waiting(reason="ContainerCreating"))
        self._last = ContainerState()
        self._ready = False
        self._started = False
        self._kill_reason: str | None = None
        self._stopping = False
        self.done = False

    def status(self) -> ContainerStatus:
        instance = self.instance
        return ContainerStatus(
            name=self.container.name,
            image=self.container.image,
            image_id=instance.image_id if instance else "",
            container_id=instance.container_id if instance else None,
            state=self._state,
            last_state=self._last,
            ready=self._ready,
            started=self._started,
            restart_count=self.restart_count,
        )

    def _set(self, state: ContainerState, *, ready: bool = False, started: bool = False) -> None:
        self._state, self._ready, self._started = state, ready, started
        self._on_change()

    def _waiting(self, reason: str, message: str | None = None) -> None:
        self._set(ContainerState(waiting=Waiting(reason=reason, message=message)))

    async def run(self, adopted: ContainerInstance | None = None) -> None:
        """Keep the container going until its policy says it is done, or until cancelled by ``stop``."""
        instance = adopted
        if adopted is not None:
            self.restart_count = adopted.instance
        while True:
            if instance is None:
                try:
                    instance = await self._start()
                except _Finished:
                    return
                if instance is None:
                    continue
            self.instance = instance
            began = self._clock.monotonic()
            exit = await self._watch(instance)
            terminated = self._terminated(instance, exit)
            if self._stopping or not _restarts(self._policy, exit.exit_code):
                self._finish(terminated)
                return
            self._last = ContainerState(terminated=terminated)
            delay = self._backoff.next_delay(self._clock.monotonic() - began)
            message = (
                f"back-off {delay:g}s restarting failed container={self.container.name} pod={self._pod_name}"
            )
            self._waiting("CrashLoopBackOff", message)
            await self._clock.sleep(delay)
            self.restart_count += 1
            instance = None

    async def _start(self) -> ContainerInstance | None:
        """Start an instance; on failure show why, wait out the back-off and return ``None``."""
        self.ended = asyncio.Event()
        self._waiting("ContainerCreating")
        try:
            launch = self._launch(self.restart_count)
            self._starting = asyncio.ensure_future(self._runtime.start(launch))
            instance = await asyncio.shield(self._starting)
        except ImagePullFailed as exc:
            self._starting = None
            self._waiting(exc.reason, str(exc))
            delay = self._pull_backoff.next_delay()
            if exc.reason == "ErrImagePull":
                # As the kubelet shows it: the pull error first, then the back-off it waits out.
                await self._clock.sleep(_PULL_ERROR_SHOWN)
                delay -= _PULL_ERROR_SHOWN
                self._waiting("ImagePullBackOff", f'Back-off pulling image "{self.container.image}": {exc}')
            await self._clock.sleep(delay)
            return None
        except ContainerStartFailed as exc:
            self._starting = None
            # Like the kubelet: the attempt counts as a run that ended with StartError (128).
            now = self._clock.now()
            self._last = ContainerState(
                terminated=Terminated(
                    exit_code=128,
                    reason="StartError",
                    message=str(exc),
                    started_at=rfc3339(now),
                    finished_at=rfc3339(now),
                )
            )
            if not _restarts(self._policy, 128):
                self._finish(self._last.terminated)  # type: ignore[arg-type]
                self._last = ContainerState()
                raise _Finished from exc
            self._waiting(exc.reason, str(exc))
            await self._clock.sleep(self._backoff.next_delay())
            self.restart_count += 1
            return None
        except PodError as exc:
            self._starting = None
            self._waiting(exc.reason, str(exc))
            await self._clock.sleep(self._backoff.next_delay())
            return None
        self._starting = None
        self._pull_backoff.reset()
        return instance

    def _finish(self, terminated: Terminated) -> None:
        self.done = True
        self.ended.set()
        self._set(ContainerState(terminated=terminated))

    def _terminated(self, instance: ContainerInstance, exit: ContainerExit) -> Terminated:
        message = exit.message
        if self._kill_reason:
            message = self._kill_reason
            self._kill_reason = None
        return Terminated(
            exit_code=exit.exit_code,
            reason=exit.reason,
            message=message,
            signal=exit.signal,
            started_at=rfc3339(instance.started_at),
            finished_at=rfc3339(exit.finished_at),
            container_id=instance.container_id,
        )

    async def _watch(self, instance: ContainerInstance) -> ContainerExit:
        """Run the instance's probes until it exits; its exit."""
        container = self.container
        running = ContainerState(running=Running(started_at=rfc3339(instance.started_at)))
        startup = container.startup_probe
        self._set(
            running, ready=container.readiness_probe is None and startup is None, started=startup is None
        )
        async with asyncio.TaskGroup() as group:
            probes: list[asyncio.Task[None]] = []

            def begin(kind: str, probe: Probe | None) -> None:
                if probe is not None:
                    loop = self._probe_loop(kind, probe, instance, group, probes)
                    probes.append(group.create_task(loop.run(), name=f"{kind} probe of {container.name}"))

            if startup is not None:
                begin("startup", startup)
            else:
                begin("liveness", container.liveness_probe)
                begin("readiness", container.readiness_probe)
            exit = await instance.wait()
            for task in probes:
                task.cancel()
        self.ended.set()
        return exit

    def _probe_loop(
        self,
        kind: str,
        probe: Probe,
        instance: ContainerInstance,
        group: asyncio.TaskGroup,
        probes: list[asyncio.Task[None]],
    ) -> ProbeLoop:
        container = self.container

        async def checker() -> str | None:
            return await check(probe, container, instance, self._probe_host, self._clock)

        async def on_result(ok: bool, message: str | None) -> None:
            if kind == "readiness":
                self._set(self._state, ready=ok, started=self._started)
            elif kind == "startup" and ok:
                self._set(self._state, ready=container.readiness_probe is None, started=True)
                for later, later_probe in (
                    ("liveness", container.liveness_probe),
                    ("readiness", container.readiness_probe),
                ):
                    if later_probe is not None:
                        loop = self._probe_loop(later, later_probe, instance, group, probes)
                        probes.append(
                            group.create_task(loop.run(), name=f"{later} probe of {container.name}")
                        )
            elif not ok:
                log.info(
                    "container %s of %s: %s probe failed, restarting it: %s",
                    container.name,
                    self._pod_name,
                    kind,
                    message,
                )
                self._kill_reason = f"{kind} probe failed: {message}"
                await self.terminate(instance, self._grace)

        initial = None if kind == "readiness" else (True if kind == "liveness" else None)
        return ProbeLoop(probe, checker, on_result, self._clock, initial=initial)

    async def terminate(self, instance: ContainerInstance, grace: float) -> ContainerExit:
        """SIGTERM, then SIGKILL if the instance is still there after ``grace`` pod seconds."""
        await instance.signal(signal.SIGTERM)
        try:
            async with self._clock.timeout(grace):
                return await instance.wait()
        except TimeoutError:
            log.info(
                "container %s of %s ignored SIGTERM for %gs; killing it",
                self.container.name,
                self._pod_name,
                grace,
            )
            await instance.signal(signal.SIGKILL)
            return await instance.wait()

    async def detach(self, task: asyncio.Task[None]) -> None:
        """Stop supervising and leave the instance running (for a runtime whose containers outlive
        the agent): cancel ``task`` (its ``run``); a start under way is finished rather than cut
        halfway (a half-made container would later be adopted as if it had run)."""
        starting = self._starting
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if starting is not None:
            await asyncio.gather(starting, return_exceptions=True)

    async def stop(self, task: asyncio.Task[None], grace: float | None = None) -> None:
        """End the container for good: cancel ``task`` (its ``run``), then stop the instance."""
        self._stopping = True
        starting = self._starting
        task.cancel()
        # A worker that failed was logged by its supervisor: it must not keep the instance (nor the
        # node's other containers, stopped together with this one) from stopping.
        await asyncio.gather(task, return_exceptions=True)
        instance = self.instance
        if starting is not None:
            try:
                instance = await starting
            except PodError:
                pass
            except Exception:  # a runtime's bug: logged, and the stop goes on
                log.exception("container %s of %s failed to start", self.container.name, self._pod_name)
        if instance is not None and not self.done:
            self.instance = instance
            exit = await self.terminate(instance, self._grace if grace is None else grace)
            self._finish(self._terminated(instance, exit))
        elif not self.done:
            now: datetime = self._clock.now()
            self._finish(
                Terminated(exit_code=0, reason="Completed", message="never started", finished_at=rfc3339(now))
            )
