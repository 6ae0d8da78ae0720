"""Requests to the Kubernetes API on the event loop: one pooled aiohttp session, no threads.

A status write through the ``kubernetes`` client costs ~470 µs of CPU in urllib3 and http.client
and ~80 µs more handing it to a worker thread and back (bench/README.md, ``sync.py`` part 3); at
thousands of writes a second that is the whole core. ``HttpTransport`` sends the same requests
from asyncio over a few kept-alive TLS connections, set up from the same
``kubernetes.client.Configuration`` (``KubeApi.from_config``): the server and its CA (or no
verification), the client certificate, the bearer token with the client's refresh hook for tokens
that expire, and an HTTP proxy. It knows nothing of Kubernetes objects: ``KubeApi`` turns its
answers into JSON and its failures into ``cloud_sync.errors``.

A configuration this transport cannot carry out (a SOCKS proxy, a proxy with its own TLS context)
makes the constructor raise ``Unsupported``, and ``KubeApi`` keeps the ``kubernetes`` client's
threads for everything.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohappyeyeballs import AddrInfoType
from yarl import URL

from cloud_sync.errors import ApiUnavailable

__all__ = ["Answer", "HttpTransport", "Unsupported"]

#: The token the client's refresh hook gives is taken again at most this often (seconds): the hook
#: may run an exec plugin or read a file, so it runs in a thread, not before every request.
TOKEN_REFRESH = 1.0
#: Idle connections are kept this long (seconds); the API server keeps them longer.
KEEPALIVE = 30.0
#: TCP keepalive: probes after this much silence, this often, this many, so that a connection to
#: an API server that vanished (a node that died, a dropped NAT entry) is found dead.
_KEEPIDLE, _KEEPINTVL, _KEEPCNT = 30, 10, 3


class Unsupported(Exception):
    """This configuration needs something only the ``kubernetes`` client's transport does."""


@dataclass(frozen=True)
class Answer:
    status: int
    reason: str
    body: bytes


def _keepalive_socket(addr_info: AddrInfoType) -> socket.socket:
    family, type_, proto, _, _ = addr_info
    sock = socket.socket(family=family, type=type_, proto=proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    probes = {"TCP_KEEPIDLE": _KEEPIDLE, "TCP_KEEPINTVL": _KEEPINTVL, "TCP_KEEPCNT": _KEEPCNT}
    for option, value in probes.items():
        if hasattr(socket, option):  # Linux names; other systems keep their defaults
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)
    return sock


def ssl_context(configuration: Any) -> ssl.SSLContext:
    """The TLS settings of a client configuration, as the ``kubernetes`` client applies them."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if not configuration.verify_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        if configuration.ssl_ca_cert:
            context.load_verify_locations(cafile=configuration.ssl_ca_cert)
        if configuration.ca_cert_data:
            data = configuration.ca_cert_data
            context.load_verify_locations(cadata=data.decode() if isinstance(data, bytes) else data)
        if configuration.assert_hostname is False:
            context.check_hostname = False
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, configuration.key_file)
    return context


class HttpTransport:
    """One ``aiohttp.ClientSession`` to the API server, made on first use in the running loop."""

    def __init__(
        self,
        configuration: Any,
        *,
        connections: int,
        timeout: float,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self._configuration = configuration
        self.host = str(configuration.host).rstrip("/")
        self.connections = connections
        self.timeout = timeout
        self._headers = dict(headers or {})
        https = self.host.startswith("https:")
        self._ssl: ssl.SSLContext | bool = ssl_context(configuration) if https else False
        self._server_hostname: str | None = configuration.tls_server_name or None
        self._proxy, self._proxy_headers = self._proxy_of(configuration)
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._authorization: str | None = None
        self._authorization_at = -TOKEN_REFRESH
        self._refreshing: asyncio.Lock | None = None
        self._slots: asyncio.Semaphore | None = None

    def _proxy_of(self, configuration: Any) -> tuple[str | None, dict[str, str] | None]:
        from kubernetes.client.rest import is_socks_proxy_url, should_bypass_proxies

        proxy = configuration.proxy
        if not proxy or should_bypass_proxies(self.host, configuration.no_proxy or ""):
            return None, None
        if is_socks_proxy_url(proxy) or configuration.proxy_ssl_context is not None:  # type: ignore[no-untyped-call]
            raise Unsupported(f"proxy {proxy} (SOCKS, or a proxy with its own TLS context)")
        return str(proxy), dict(configuration.proxy_headers or {}) or None

    # -- the session ---------------------------------------------------------------------------------

    def _session_here(self) -> aiohttp.ClientSession:
        """The session of the running loop (a new one if the previous loop has gone)."""
        loop = asyncio.get_running_loop()
        if self._session is None or self._loop is not loop or self._session.closed:
            self._drop_session()
            connector = aiohttp.TCPConnector(
                limit=self.connections,
                keepalive_timeout=KEEPALIVE,
                ssl=self._ssl,
                socket_factory=_keepalive_socket,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                # No timeout here: it would count the wait for a free connection too, and under more
                # load than the API takes, requests would time out in the queue and be sent again.
                timeout=aiohttp.ClientTimeout(total=None),
                headers=self._headers,
                skip_auto_headers=("User-Agent",) if "User-Agent" in self._headers else (),
                raise_for_status=False,
                auto_decompress=True,
                trust_env=False,  # proxies come from the configuration, as for the client
                cookie_jar=aiohttp.DummyCookieJar(),  # the API sets none: no cookie work per request
            )
            self._loop = loop
            self._refreshing = asyncio.Lock()
            self._slots = asyncio.Semaphore(self.connections)
        return self._session

    def _drop_session(self) -> None:
        """Close a session without its loop (gone, or not this one): its sockets are shut at once."""
        session, self._session = self._session, None
        if session is not None and not session.closed and session.connector is not None:
            session.connector.close(abort_ssl=True)  # an awaitable that need not be awaited
            session.detach()

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is None or session.closed:
            return
        if self._loop is asyncio.get_running_loop():
            await session.close()
        else:
            self._session = session
            self._drop_session()

    def close(self) -> None:
        self._drop_session()

    # -- requests ------------------------------------------------------------------------------------

    async def _authorization_header(self) -> str | None:
        """The ``Authorization`` value; with a refresh hook, taken again in a thread once a second."""
        configuration = self._configuration
        if configuration.refresh_api_key_hook is None:
            return _bearer(configuration)
        loop = asyncio.get_running_loop()
        if loop.time() - self._authorization_at >= TOKEN_REFRESH:
            assert self._refreshing is not None
            async with self._refreshing:
                if loop.time() - self._authorization_at >= TOKEN_REFRESH:
                    self._authorization = await asyncio.to_thread(_bearer, configuration)
                    self._authorization_at = loop.time()
        return self._authorization

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str | int] | None = None,
        body: bytes | None = None,
        content_type: str | None = None,
    ) -> Answer:
        """Send one request; ``ApiUnavailable`` (status 0) when no complete answer comes."""
        session = self._session_here()
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        authorization = await self._authorization_header()
        if authorization:
            headers["Authorization"] = authorization
        url = URL(self.host + path, encoded=True)
        if query:
            url = url.extend_query({key: _query_value(value) for key, value in query.items()})
        assert self._slots is not None
        try:
            # As many in flight as there are connections, the others waiting their turn here (as
            # with the client's threads); the timeout counts from the moment one is sent.
            async with (
                self._slots,
                asyncio.timeout(self.timeout),
                session.request(
                    method,
                    url,
                    data=body,
                    headers=headers,
                    proxy=self._proxy,
                    proxy_headers=self._proxy_headers,
                    server_hostname=self._server_hostname,
                ) as response,
            ):
                data = await response.read()
                return Answer(response.status, response.reason or "", data)
        except aiohttp.ClientConnectorCertificateError as exc:
            raise ApiUnavailable(
                f"the Kubernetes API at {self.host} failed TLS verification: {exc.certificate_error}"
            ) from exc
        except aiohttp.ClientSSLError as exc:
            raise ApiUnavailable(f"TLS with the Kubernetes API at {self.host} failed: {exc}") from exc
        except aiohttp.ClientConnectorError as exc:
            reason = _connect_failure(exc.os_error)
            raise ApiUnavailable(f"the Kubernetes API at {self.host} does not answer: {reason}") from exc
        except aiohttp.ClientPayloadError as exc:
            raise ApiUnavailable(f"the Kubernetes API at {self.host} broke off an answer: {exc}") from exc
        except TimeoutError as exc:
            raise ApiUnavailable(
                f"the Kubernetes API at {self.host} did not answer {method} {path} within {self.timeout:g} s"
            ) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise ApiUnavailable(f"the Kubernetes API at {self.host} does not answer: {exc!r}") from exc


def _bearer(configuration: Any) -> str | None:
    # The client's own lookup: runs the refresh hook, then ``api_key`` with its prefix.
    value = configuration.get_api_key_with_prefix("BearerToken", alias="authorization")
    return str(value) if value else None


def _connect_failure(error: OSError) -> str:
    """ "Connection refused" rather than asyncio's "Connect call failed ('127.0.0.1', 6443)"."""
    if isinstance(error, socket.gaierror) or not error.errno or error.errno < 0:
        return str(error)  # a name that does not resolve says so itself
    return os.strerror(error.errno)


def _query_value(value: str | int) -> str:
    if isinstance(value, bool):  # yarl refuses booleans; the API wants lower case
        return "true" if value else "false"
    return str(value)
