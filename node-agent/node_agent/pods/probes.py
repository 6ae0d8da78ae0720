"""Liveness, readiness and startup probes: one check each, and the loop that turns checks into results.

A check is ``exec`` (a command beside the container, success = exit 0), ``httpGet`` (2xx/3xx), or
``tcpSocket`` (a connection accepted), each bounded by ``timeoutSeconds``. ``ProbeLoop`` runs one
probe every ``periodSeconds`` after ``initialDelaySeconds`` and reports a flip only after
``successThreshold`` successes or ``failureThreshold`` failures in a row, as the kubelet's prober
does. Times are pod seconds on the ``PodClock``.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import subprocess
from collections.abc import Awaitable, Callable

from node_agent.pods.clock import PodClock
from node_agent.pods.runtime import ContainerInstance
from node_agent.pods.spec import Container, HTTPGetAction, Probe

__all__ = ["ProbeLoop", "check"]

log = logging.getLogger(__name__)


def _port(container: Container, port: int | str) -> int:
    if isinstance(port, int):
        return port
    if port.isdigit():
        return int(port)
    for declared in container.ports:
        if declared.name == port:
            return declared.container_port
    raise ValueError(f"no container port named {port!r}")


async def _http_get(action: HTTPGetAction, host: str, port: int) -> str | None:
    context = None
    if action.scheme == "HTTPS":
        # The kubelet does not verify a probe's certificate either.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    reader, writer = await asyncio.open_connection(host, port, ssl=context)
    try:
        headers = "".join(f"{h.get('name', '')}: {h.get('value', '')}\r\n" for h in action.http_headers)
        request = (
            f"GET {action.path or '/'} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/edgetwin\r\n"
            f"Accept: */*\r\n{headers}Connection: close\r\n\r\n"
        )
        writer.write(request.encode())
        await writer.drain()
        status_line = await reader.readline()
    finally:
        writer.close()
    parts = status_line.split()
    if len(parts) < 2 or not parts[1].isdigit():
        return f"HTTP probe got no status line: {status_line[:80]!r}"
    code = int(parts[1])
    return None if 200 <= code < 400 else f"HTTP probe failed with statuscode: {code}"


async def check(
    probe: Probe, container: Container, instance: ContainerInstance, host: str, clock: PodClock
) -> str | None:
    """Run one probe; ``None`` on success, else why it failed."""
    timeout = probe.timeout_seconds
    try:
        if probe.exec is not None:
            result = await instance.exec(probe.exec.command, timeout * clock.scale)
            if result.exit_code == 0:
                return None
            output = result.output.decode(errors="replace").strip()[-200:]
            return f"command {probe.exec.command} exited with {result.exit_code}: {output}".rstrip(": ")
        if probe.http_get is not None:
            action = probe.http_get
            async with clock.timeout(timeout):
                return await _http_get(action, action.host or host, _port(container, action.port))
        if probe.tcp_socket is not None:
            target = probe.tcp_socket
            async with clock.timeout(timeout):
                _, writer = await asyncio.open_connection(target.host or host, _port(container, target.port))
            writer.close()
            return None
    except TimeoutError:
        return f"probe timed out after {timeout}s"
    except (OSError, ValueError, subprocess.SubprocessError) as exc:  # an exec probe may fail to spawn
        return f"probe failed: {exc}"
    return "probe has no handler"


class ProbeLoop:
    """Runs one probe until cancelled; calls ``on_result(ok, message)`` whenever the result flips.

    The first call comes at the first threshold crossed; until then the caller keeps its
    initial assumption (not ready, alive, not started).
    """

    def __init__(
        self,
        probe: Probe,
        checker: Callable[[], Awaitable[str | None]],
        on_result: Callable[[bool, str | None], Awaitable[None]],
        clock: PodClock,
        *,
        initial: bool | None = None,
    ) -> None:
        self.probe = probe
        self._check = checker
        self._on_result = on_result
        self._clock = clock
        self.result = initial

    async def run(self) -> None:
        probe = self.probe
        await self._clock.sleep(probe.initial_delay_seconds)
        successes = failures = 0
        while True:
            failure = await self._check()
            if failure is None:
                successes, failures = successes + 1, 0
                if successes >= probe.success_threshold and self.result is not True:
                    self.result = True
                    await self._on_result(True, None)
            else:
                successes, failures = 0, failures + 1
                log.debug("probe failed (%d in a row): %s", failures, failure)
                if failures >= probe.failure_threshold and self.result is not False:
                    self.result = False
                    await self._on_result(False, failure)
            await self._clock.sleep(probe.period_seconds)
