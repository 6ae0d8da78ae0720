"""The Kubernetes API from asyncio, set up like the ``kubernetes`` client.

Requests from asyncio (``call``, ``get``, ``list_all``: status writes, reads, creates) go through
``cloud_sync.kube_http``: one pooled aiohttp session on the loop, no threads, built from the
client's own ``Configuration`` (TLS, bearer token or client certificate, proxy). Blocking requests
(``request``) and watches (``open_stream``, run in threads of their own by ``cloud_sync.watches``)
go through the client's ``ApiClient`` and urllib3, as does everything when the configuration needs
what only the client does (a SOCKS proxy): then ``call`` runs in a small thread pool of its own
(``workers`` threads). The client's generated API classes are not used: they deserialize into
model objects, and cloud-sync works on the JSON objects as the API sends them. The configuration
comes from a kubeconfig or, inside a pod, from the service account (``from_config``).

Every failure comes out as one of ``cloud_sync.errors`` whichever way it went: no answer (refused,
reset, timed out, TLS verification failed), 429 and 5xx are ``ApiUnavailable`` (retry with
back-off), 409 ``ApiConflict`` (re-read), 404 ``ApiNotFound``, other 4xx ``ApiRefused``.
The ``kubernetes`` package and aiohttp are imported only when a client is made (``import
cloud_sync`` stays light for ``edgetwin cloud token``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from cloud_sync.errors import ApiError, ApiUnavailable, InvalidKubeconfig, api_error

if TYPE_CHECKING:
    from cloud_sync.kube_http import HttpTransport

__all__ = ["JSON_PATCH", "MERGE_PATCH", "KubeApi", "Obj", "StreamResponse", "at_most_every", "in_cluster"]

log = logging.getLogger(__name__)

#: A Kubernetes object as JSON.
Obj = dict[str, Any]
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
T = TypeVar("T")
#: Requests in flight at once (connections of the asyncio transport, or threads), and the streams
#: cloud-sync keeps open besides (eight watches, and pod logs being followed).
WORKERS = 8
WATCHES = 12


def at_most_every(
    seconds: float, hook: Callable[[Any], None], clock: Callable[[], float] = time.monotonic
) -> Callable[[Any], None]:
    """A client configuration's ``refresh_api_key_hook`` run when at least ``seconds`` passed since
    it last ran. The client's own hook installs itself again each time it runs: this puts the
    throttled one back."""
    last = -math.inf

    def throttled(configuration: Any) -> None:
        nonlocal last
        now = clock()
        if now - last >= seconds:
            last = now
            hook(configuration)
            configuration.refresh_api_key_hook = throttled

    return throttled


class StreamResponse:
    """An open streaming response (a watch): its lines as they come; ``close`` cuts it from any thread."""

    def __init__(self, response: Any) -> None:
        self._response = response

    def lines(self) -> Iterator[bytes]:
        pending = b""
        for chunk in self._response.stream(None, decode_content=True):
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                if line.strip():
                    yield line
        if pending.strip():
            yield pending

    def close(self) -> None:
        """Unblock a thread reading ``lines`` (it gets an error) and free the connection."""
        try:
            self._response.shutdown()
        except Exception as exc:  # noqa: BLE001 - closing a dead connection may fail in many ways
            log.debug("closing a watch connection: %s", exc)
        self._response.release_conn()


class KubeApi:
    """JSON requests to one Kubernetes API server, blocking (``request``) or from asyncio (``call``)."""

    def __init__(self, api_client: Any, *, workers: int = WORKERS, timeout: float = 30.0) -> None:
        self._client = api_client
        self.timeout = timeout
        #: Requests ``call`` sends at once (the transport's connections, or the threads).
        self.connections = workers
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kube-api")
        self._http = _transport(api_client, connections=workers, timeout=timeout)

    @classmethod
    def from_config(
        cls, kubeconfig: Path | None = None, *, workers: int = WORKERS, **options: Any
    ) -> KubeApi:
        """A client from ``kubeconfig``, or (``None``) from the pod's service account."""
        from kubernetes import client, config

        configuration = client.Configuration()
        try:
            if kubeconfig is not None:
                config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)  # type: ignore[no-untyped-call]
            else:
                config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except (config.ConfigException, OSError, ValueError, TypeError) as exc:
            where = kubeconfig if kubeconfig is not None else "the pod's service account"
            raise InvalidKubeconfig(f"cannot use {where}: {exc}") from exc
        # A connection for each worker and each watch: with fewer (urllib3's default is 10), every
        # request past them opens a new TLS connection and throws it away ("pool is full").
        configuration.connection_pool_maxsize = workers + WATCHES
        # The client runs this hook before every request; from a kubeconfig with a token it sets the
        # host again, which reads every environment variable for proxies: a third of a status
        # write's CPU. A token that expires is still renewed, within a second.
        hook = configuration.refresh_api_key_hook
        if hook is not None:
            configuration.refresh_api_key_hook = at_most_every(1.0, hook)
        return cls(client.ApiClient(configuration), workers=workers, **options)

    @property
    def host(self) -> str:
        return str(self._client.configuration.host)

    @property
    def transport(self) -> str:
        """How ``call`` sends: ``aiohttp`` (on the loop) or ``threads`` (the client's urllib3)."""
        return "threads" if self._http is None else "aiohttp"

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self._http is not None:
            self._http.close()
        self._client.close()

    async def aclose(self) -> None:
        """Close, after letting the requests already sent finish (in a thread: they may need the loop)."""
        await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)
        if self._http is not None:
            await self._http.aclose()
        self._client.close()

    # -- blocking ----------------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        query: Mapping[str, str | int] | None,
        body: Any,
        content_type: str | None,
        timeout: float | tuple[float, float],
    ) -> Any:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        try:
            request = self._client.param_serialize(
                method=method,
                resource_path=path,
                query_params=list((query or {}).items()),
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
            response = self._client.call_api(*request, _request_timeout=timeout)
        except ApiException as exc:  # the client's own: TLS failures, refused requests
            raise api_error(int(exc.status or 0), str(exc.reason or "Error"), "") from exc
        except (HTTPError, OSError) as exc:
            raise ApiUnavailable(f"the Kubernetes API at {self.host} does not answer: {exc}") from exc
        if not 200 <= response.status < 300:
            raise _failure(response.status, response.reason, response.read())
        return response

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str | int] | None = None,
        body: Any = None,
        content_type: str | None = None,
    ) -> Obj:
        """Send one request and return the JSON object answered; ``ApiError`` on failure."""
        response = self._send(method, path, query, body, content_type, self.timeout)
        try:
            data = response.read()
        except Exception as exc:
            raise ApiUnavailable(f"the Kubernetes API at {self.host} broke off an answer: {exc}") from exc
        answer: Obj = orjson.loads(data) if data else {}
        return answer

    def open_stream(self, path: str, query: Mapping[str, str | int], read_timeout: float) -> StreamResponse:
        response = self._send("GET", path, query, None, None, (self.timeout, read_timeout))
        return StreamResponse(response.response)

    # -- asyncio -------------------------------------------------------------------------------------

    async def run(self, function: Callable[[], T]) -> T:
        """Run a blocking function in the API's thread pool."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, function)

    async def call(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str | int] | None = None,
        body: Any = None,
        content_type: str | None = None,
    ) -> Obj:
        """Send one request from asyncio and return the JSON object answered; ``ApiError`` on failure."""
        if self._http is None:
            return await self.run(
                lambda: self.request(method, path, query=query, body=body, content_type=content_type)
            )
        data = None if body is None else orjson.dumps(body)
        answer = await self._http.request(method, path, query=query, body=data, content_type=content_type)
        if not 200 <= answer.status < 300:
            raise _failure(answer.status, answer.reason, answer.body)
        try:
            result: Obj = orjson.loads(answer.body) if answer.body else {}
        except orjson.JSONDecodeError as exc:
            raise ApiUnavailable(
                f"the Kubernetes API at {self.host} answered {method} {path} with no JSON"
            ) from exc
        return result

    async def get(self, path: str) -> Obj:
        return await self.call("GET", path)

    async def list_all(
        self, path: str, query: Mapping[str, str | int] | None = None
    ) -> tuple[list[Obj], str]:
        """Every object of a list (in pages of 500) and the resourceVersion to watch from."""
        items: list[Obj] = []
        resource_version = ""
        token = ""
        while True:
            page_query: dict[str, str | int] = {**(query or {}), "limit": 500}
            if token:
                page_query["continue"] = token
            page = await self.call("GET", path, query=page_query)
            metadata = page.get("metadata") or {}
            # The first page's version: watching from it replays what changed while paging.
            resource_version = resource_version or str(metadata.get("resourceVersion", ""))
            items.extend(page.get("items") or [])
            token = str(metadata.get("continue") or "")
            if not token:
                return items, resource_version


def _transport(api_client: Any, *, connections: int, timeout: float) -> HttpTransport | None:
    """The asyncio transport for this client's configuration, or ``None`` where only the client's
    own threads will do."""
    import ssl

    from cloud_sync.kube_http import HttpTransport, Unsupported

    configuration = api_client.configuration
    try:
        return HttpTransport(
            configuration, connections=connections, timeout=timeout, headers=api_client.default_headers
        )
    except Unsupported as exc:
        log.info("requests to %s go through the kubernetes client's threads: %s", configuration.host, exc)
        return None
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise InvalidKubeconfig(f"cannot use the TLS files for {configuration.host}: {exc}") from exc


def _failure(status: int, reason: str | None, data: bytes) -> ApiError:
    message = ""
    status_reason = reason or ""
    try:
        body = orjson.loads(data) if data else {}
    except orjson.JSONDecodeError:
        body = {}
    if isinstance(body, dict):
        message = str(body.get("message", ""))
        status_reason = str(body.get("reason") or status_reason)
    return api_error(status, status_reason, message[:500])


def in_cluster() -> bool:
    """Whether this process runs in a pod (the service account is mounted and the API announced)."""
    return (
        bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
        and Path("/var/run/secrets/kubernetes.io/serviceaccount/token").is_file()
    )
