"""``GET …/pods/{name}/log``: a container's log, from wherever the server's owner says logs come from.

kube-apiserver proxies ``pods/log`` to the kubelet of the pod's node. This server has no kubelets
to call: ``serve(pod_logs=…)`` takes a ``PodLogs`` provider (``edgetwin cloud`` wires cloud-sync,
which fetches the log from the node over the cloud link) and this module does the HTTP around it,
as the real server does: the pod and container checked first (404, and 400 with kube-apiserver's
wording), the query read (``container``, ``follow``, ``previous``, ``tailLines``, ``timestamps``,
``limitBytes``, ``sinceSeconds``), then a ``text/plain`` body streamed as the provider yields it.

A provider says why it cannot give a log by what it raises before its first item: ``LookupError``
(the node has no such log: a container waiting to start, no previous instance) becomes 400,
``TimeoutError`` and ``ConnectionError`` (the node cannot be reached) 503. Without a provider every
log request is a 503 saying so.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from api_server.errors import ApiError, BadRequest
from api_server.operations import Operations
from api_server.resources import ResourceType
from api_server.routing import bool_param

__all__ = ["LogOptions", "PodLogs", "ServiceUnavailable", "serve_pod_log"]

log = logging.getLogger(__name__)


class ServiceUnavailable(ApiError):
    code = 503
    reason = "ServiceUnavailable"


@dataclass(frozen=True)
class LogOptions:
    """What a ``pods/log`` request asks for (``container`` is always a container of the pod)."""

    container: str
    follow: bool = False
    previous: bool = False
    tail_lines: int | None = None
    timestamps: bool = False
    limit_bytes: int | None = None
    since_seconds: int | None = None


class PodLogs(Protocol):
    def __call__(self, pod: dict[str, Any], options: LogOptions) -> AsyncIterator[bytes]:
        """The log of ``options.container`` of ``pod`` (the object as stored); see the module's doc."""
        ...


def _count(request: web.Request, name: str, minimum: int) -> int | None:
    text = request.query.get(name)
    if text is None or text == "":
        return None
    try:
        value = int(text)
    except ValueError:
        raise BadRequest(f"{name}: {text!r} is not a number") from None
    if value < minimum:
        raise BadRequest(f"{name}: must be {minimum} or more, not {value}")
    return value


def _options(request: web.Request, pod: dict[str, Any]) -> LogOptions:
    name = pod["metadata"]["name"]
    spec = pod.get("spec") or {}
    containers = [str(c.get("name")) for c in spec.get("containers") or [] if isinstance(c, dict)]
    others = [
        str(c.get("name"))
        for key in ("initContainers", "ephemeralContainers")
        for c in spec.get(key) or []
        if isinstance(c, dict)
    ]
    container = request.query.get("container", "")
    if not container:
        if len(containers) != 1:
            choices = " ".join(containers)
            raise BadRequest(f"a container name must be specified for pod {name}, choose one of: [{choices}]")
        container = containers[0]
    elif container not in containers + others:
        raise BadRequest(f"container {container} is not valid for pod {name}")
    if request.query.get("sinceTime"):
        raise BadRequest("sinceTime is not supported by edgetwin's nodes: use sinceSeconds (--since)")
    return LogOptions(
        container=container,
        follow=bool_param(request, "follow"),
        previous=bool_param(request, "previous"),
        tail_lines=_count(request, "tailLines", 0),
        timestamps=bool_param(request, "timestamps"),
        limit_bytes=_count(request, "limitBytes", 1),
        since_seconds=_count(request, "sinceSeconds", 1),
    )


async def serve_pod_log(
    request: web.Request,
    ops: Operations,
    rtype: ResourceType,
    namespace: str,
    name: str,
    provider: PodLogs | None,
) -> web.StreamResponse:
    pod = ops.get(rtype, namespace, name)
    options = _options(request, pod)
    node = (pod.get("spec") or {}).get("nodeName")
    if not node:
        raise BadRequest(f"pod {name} is not bound to a node yet: it has no logs")
    if provider is None:
        raise ServiceUnavailable(
            f"this API server reaches no node's logs (run it with cloud-sync: edgetwin cloud); pod {name} "
            f"runs on node {node}"
        )
    chunks = provider(pod, options).__aiter__()
    try:
        try:
            first = await chunks.__anext__()
        except StopAsyncIteration:
            first = None
        except LookupError as exc:
            raise BadRequest(str(exc.args[0]) if exc.args else str(exc)) from exc
        except (TimeoutError, ConnectionError) as exc:
            raise ServiceUnavailable(f"the log of pod {name} cannot be reached: {exc}") from exc
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        if first:
            await response.write(first)
        if first is not None:
            try:
                async for chunk in chunks:
                    await response.write(chunk)
            except (LookupError, TimeoutError, ConnectionError) as exc:
                log.info("the log of pod %s/%s ended early: %s", namespace, name, exc)
        await response.write_eof()
        return response
    finally:
        close = getattr(chunks, "aclose", None)  # an async generator: let it end its stream now
        if close is not None:
            with contextlib.suppress(Exception):
                await close()
