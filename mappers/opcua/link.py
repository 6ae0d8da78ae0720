"""The one place that talks asyncua's client: one session per device, its errors translated once.

asyncua 2.1's client has its own supervisor: it probes a silent connection every
``watchdog_intervall`` and notices a closed socket at once. Its own reconnect loop stays off
(``auto_reconnect=False``): the runner owns reconnects and their back-off, so a lost connection is
surfaced here (``lost``) and the plugin raises ``DeviceUnreachable``; the runner then closes this
link, marks the device offline and connects a new one, which re-creates the subscriptions.

Translation: no connection, a timeout or a status that says the session or channel is gone is
``DeviceUnreachable`` (offline); any other bad status is ``DeviceRefused`` (the server is there and
says no: an untrusted certificate, a wrong password, a node that does not exist, a value it will
not take) with the status name, which is what an OPC UA engineer searches for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeAlias, TypeVar

from asyncua import Client, ua
from asyncua.common.subscription import DataChangeEvent, StatusChangeEvent, Subscription
from asyncua.common.ua_utils import data_type_to_variant_type
from asyncua.crypto import security_policies
from asyncua.crypto.uacrypto import CertProperties

from mappers.opcua.config import OpcuaConfig
from mappers.opcua.security import Credentials
from twin.errors import DeviceRefused, DeviceUnreachable, InvalidManifest, PermanentError

__all__ = ["Change", "OpcuaLink", "Target", "builtin_type", "describe_status", "item_error", "translate"]

log = logging.getLogger(__name__)

# asyncua logs every refused connection, dropped socket and failed close at WARNING or ERROR, with
# tracebacks, on every reconnect attempt to a dead server. Its errors are translated and logged
# here once per transition, so its loggers stay quiet unless someone configured them on purpose.
_asyncua_log = logging.getLogger("asyncua")
if _asyncua_log.level == logging.NOTSET:
    _asyncua_log.setLevel(logging.CRITICAL)

# Statuses that mean the session, channel or server is gone, not that a request was refused.
_GONE = frozenset(
    getattr(ua.StatusCodes, name)
    for name in (
        "BadTimeout",
        "BadCommunicationError",
        "BadConnectionClosed",
        "BadConnectionRejected",
        "BadDisconnect",
        "BadServerHalted",
        "BadServerNotConnected",
        "BadShutdown",
        "BadSessionClosed",
        "BadSessionIdInvalid",
        "BadSecureChannelClosed",
        "BadSecureChannelIdInvalid",
        "BadNoCommunication",
        "BadTcpInternalError",
        "BadTooManySessions",
        "BadResourceUnavailable",
        "BadNotConnected",
    )
    if hasattr(ua.StatusCodes, name)
)

_T = TypeVar("_T")
_Request: TypeAlias = Callable[[Client], Awaitable[_T]]

_POLICIES: dict[str, type[security_policies.SecurityPolicy]] = {
    "Basic256Sha256": security_policies.SecurityPolicyBasic256Sha256,
    "Aes128Sha256RsaOaep": security_policies.SecurityPolicyAes128Sha256RsaOaep,
    "Aes256Sha256RsaPss": security_policies.SecurityPolicyAes256Sha256RsaPss,
    "Basic256": security_policies.SecurityPolicyBasic256,
    "Basic128Rsa15": security_policies.SecurityPolicyBasic128Rsa15,
}


def describe_status(status: ua.StatusCode) -> str:
    """``BadNodeIdUnknown (The node id refers to a node that does not exist…)``."""
    try:
        return f"{status.name} ({status.doc.rstrip('.')})"
    except (KeyError, AttributeError):
        return f"status 0x{status.value:08X}"


def _status_error(code: int, what: str) -> DeviceUnreachable | DeviceRefused:
    text = f"{what}: {describe_status(ua.StatusCode(ua.UInt32(code)))}"
    return DeviceUnreachable(text) if code in _GONE else DeviceRefused(text)


def item_error(status: ua.StatusCode, what: str) -> DeviceRefused:
    """A bad status for one node of a request: that node's problem, never the connection's."""
    return DeviceRefused(f"{what}: {describe_status(status)}")


def translate(exc: BaseException, what: str) -> DeviceUnreachable | DeviceRefused:
    """One asyncua (or socket) exception as the ``twin.errors`` class it means."""
    if isinstance(exc, ua.UaStatusCodeError):
        return _status_error(exc.code, what)
    if isinstance(exc, TimeoutError):
        return DeviceUnreachable(f"{what}: no answer in time")
    if isinstance(exc, ConnectionRefusedError):
        return DeviceUnreachable(f"{what}: connection refused")
    if isinstance(exc, OSError):  # ConnectionError included
        return DeviceUnreachable(f"{what}: {exc.strerror or exc}")
    # asyncua's plain UaError: the server answered but cannot serve us ("No matching endpoints").
    return DeviceRefused(f"{what}: {exc}")


async def builtin_type(client: Client, data_type: ua.NodeId) -> ua.VariantType:
    """The built-in type that carries values of ``data_type`` (a DataType node id)."""
    identifier = data_type.Identifier
    if data_type.NamespaceIndex == 0 and isinstance(identifier, int) and 1 <= identifier <= 25:
        return ua.VariantType(identifier)
    # A subtype (Duration is a Double, an enumeration an Int32): walk up to the built-in type.
    return await data_type_to_variant_type(client.get_node(data_type))


@dataclass(frozen=True)
class Target:
    """A property's node, resolved when the device connects: what reads and writes need."""

    node_id: ua.NodeId
    variant_type: ua.VariantType
    is_array: bool
    where: str  # "temperature (ns=2;s=Boiler.Temperature)" for messages


@dataclass(frozen=True)
class Change:
    """A data change pushed by the server for the monitored item ``handle``."""

    handle: int
    value: ua.DataValue


class OpcuaLink:
    """One client session to one server, for one device."""

    def __init__(self, config: OpcuaConfig) -> None:
        self._config = config
        self._timeout = config.timeout / 1000
        self._client: Client | None = None
        self._lost = asyncio.Event()
        self._lost_reason = ""
        self._variant_types: dict[ua.NodeId, ua.VariantType] = {}

    @property
    def url(self) -> str:
        return self._config.url

    def _connected(self) -> Client:
        if self._client is None or self._lost.is_set():
            raise DeviceUnreachable(f"{self.url}: {self._lost_reason or 'not connected'}")
        return self._client

    async def connect(self, credentials: Credentials) -> None:
        config = self._config
        client = Client(config.url, timeout=self._timeout, watchdog_intervall=config.watchdogInterval / 1000)
        client.session_timeout = int(config.sessionTimeout)
        client.name = client.description = "edgetwin OPC UA mapper"
        if credentials.application_uri:
            client.application_uri = credentials.application_uri
        client.connection_lost_callback = self._on_lost
        if credentials.user_name:
            client.set_user(credentials.user_name)
        if credentials.password is not None:
            client.set_password(credentials.password)
        # Every exchange of the handshake is bounded by ``timeout``; this bounds them all together.
        budget = self._timeout * 4 + 1
        try:
            async with asyncio.timeout(budget):
                if config.securityPolicy != "None":
                    assert credentials.certificate is not None and credentials.private_key is not None
                    server_cert = (
                        CertProperties(credentials.server_certificate, "der")
                        if credentials.server_certificate
                        else None
                    )
                    # Without serverCertificateFile asyncua asks the server's endpoints for it.
                    await client.set_security(
                        _POLICIES[config.securityPolicy],
                        CertProperties(credentials.certificate, "der"),
                        CertProperties(credentials.private_key, "der"),
                        server_certificate=server_cert,
                        mode=getattr(ua.MessageSecurityMode, config.message_security),
                    )
                await client.connect()
        except (ua.UaError, OSError, TimeoutError) as exc:
            client.disconnect_socket()
            what = f"cannot connect to {config.url}"
            if type(exc) is ua.UaError and str(exc).startswith("No matching endpoints"):
                raise DeviceRefused(
                    f"{what}: the server offers no endpoint for securityPolicy {config.securityPolicy}, "
                    f"securityMode {config.message_security}"
                ) from exc
            raise translate(exc, what) from exc
        self._client = client

    async def _on_lost(self, exc: Exception) -> None:
        if isinstance(exc, TimeoutError):
            detail = f"no answer to a keep-alive probe within {self._config.watchdogInterval:g} ms"
        elif isinstance(exc, ua.UaStatusCodeError):
            detail = describe_status(ua.StatusCode(ua.UInt32(exc.code)))
        elif isinstance(exc, ConnectionError):
            detail = "the server closed it"
        else:
            detail = str(exc) or type(exc).__name__
        self._lost_reason = f"connection lost: {detail}"
        self._lost.set()

    async def wait_lost(self) -> None:
        """Return when asyncua's supervisor notices the connection is gone (socket closed or silent)."""
        await self._lost.wait()

    @property
    def lost_reason(self) -> str:
        return self._lost_reason

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        client.connection_lost_callback = None
        try:
            async with asyncio.timeout(self._timeout + 1):
                await client.disconnect()
        except (ua.UaError, OSError, TimeoutError) as exc:
            log.debug("closing the session with %s: %s", self.url, exc)
        finally:
            client.disconnect_socket()

    # -- resolving nodes ---------------------------------------------------------------------------

    async def node_ids(self, addresses: Sequence[tuple[str, bool]]) -> list[ua.NodeId | PermanentError]:
        """``(address, is_browse_path)`` as node ids: ids parsed, paths translated in one request."""
        results: list[ua.NodeId | PermanentError] = []
        paths: dict[int, ua.RelativePath] = {}
        for i, (address, is_path) in enumerate(addresses):
            results.append(DeviceRefused(f"{address!r} was not resolved"))
            if is_path:
                # OPC UA's relative path text (Part 4 A.2) from the Root folder; "/" may be left out.
                text = address if address.startswith(("/", ".", "<")) else "/" + address
                try:
                    paths[i] = ua.RelativePath.from_string(text)
                except (ValueError, ua.UaError) as exc:
                    results[i] = InvalidManifest(
                        f"browsePath {address!r} is not an OPC UA relative path ({exc})"
                    )
                continue
            try:
                results[i] = ua.NodeId.from_string(address)
            except ua.UaStringParsingError:
                results[i] = InvalidManifest(
                    f"nodeID {address!r} is not an OPC UA node id (like ns=2;i=7 or ns=2;s=Temperature)"
                )
        if paths:
            root = ua.NodeId(ua.Int32(ua.ObjectIds.RootFolder))
            answers = await self._call(
                lambda client: client.translate_browsepaths(root, list(paths.values())),
                f"translating browse paths on {self.url}",
            )
            for i, answer in zip(paths, answers, strict=True):
                where = f"browsePath {addresses[i][0]!r}"
                if not answer.StatusCode.is_good():
                    results[i] = item_error(answer.StatusCode, where)
                elif not answer.Targets:
                    results[i] = DeviceRefused(f"{where} leads to no node")
                else:
                    target = answer.Targets[0].TargetId
                    results[i] = ua.NodeId(target.Identifier, target.NamespaceIndex, target.NodeIdType)
        return results

    async def describe(
        self, node_ids: Sequence[ua.NodeId]
    ) -> list[tuple[ua.VariantType, bool] | PermanentError]:
        """Each node's built-in type (from its DataType) and whether it holds an array."""
        params = ua.ReadParameters()
        for node_id in node_ids:
            for attr in (ua.AttributeIds.DataType, ua.AttributeIds.ValueRank):
                params.NodesToRead.append(ua.ReadValueId(NodeId=node_id, AttributeId=attr))
        values = await self._call(lambda client: client.uaclient.read(params), "reading data types")
        results: list[tuple[ua.VariantType, bool] | PermanentError] = []
        for i, node_id in enumerate(node_ids):
            dtype, rank = values[2 * i], values[2 * i + 1]
            status = dtype.StatusCode or ua.StatusCode()
            if not status.is_good() or dtype.Value is None or not isinstance(dtype.Value.Value, ua.NodeId):
                results.append(item_error(status, node_id.to_string()))
                continue
            vtype = await self._variant_type(dtype.Value.Value)
            array = rank.Value is not None and isinstance(rank.Value.Value, int) and rank.Value.Value >= 0
            results.append((vtype, array))
        return results

    async def _variant_type(self, data_type: ua.NodeId) -> ua.VariantType:
        known = self._variant_types.get(data_type)
        if known is None:
            known = await self._call(lambda client: builtin_type(client, data_type), "reading a data type")
            self._variant_types[data_type] = known
        return known

    # -- reads, writes, subscriptions --------------------------------------------------------------

    async def read(self, node_ids: Sequence[ua.NodeId]) -> list[ua.DataValue]:
        """The Value attribute of each node, in one Read request."""
        params = ua.ReadParameters()
        params.NodesToRead = [ua.ReadValueId(NodeId=n, AttributeId=ua.AttributeIds.Value) for n in node_ids]
        return await self._call(lambda client: client.uaclient.read(params), f"reading from {self.url}")

    async def write(self, node_id: ua.NodeId, variant: ua.Variant) -> ua.StatusCode:
        """Write a Value; the status the server answered (bad ones are the caller's to name)."""
        item = ua.WriteValue(
            NodeId=node_id,
            AttributeId=ua.AttributeIds.Value,
            # No timestamps: servers such as Siemens S7 refuse a written SourceTimestamp.
            Value=ua.DataValue(Value=variant),
        )
        params = ua.WriteParameters(NodesToWrite=[item])
        (status,) = await self._call(lambda client: client.uaclient.write(params), f"writing to {self.url}")
        return status

    async def changes(
        self, items: Sequence[tuple[int, ua.NodeId, float]], publishing_interval: float
    ) -> AsyncIterator[Change | tuple[int, PermanentError]]:
        """Subscribe to the Value of ``items`` (handle, node, sampling ms) and yield what the server pushes.

        A monitored item the server refuses is yielded once as ``(handle, error)``. Ends with
        ``DeviceUnreachable`` when the connection is lost or the server ends the subscription.
        """
        client = self._connected()
        try:
            sub = await client.create_subscription(publishing_interval, None, queue_maxsize=10_000)
        except (ua.UaError, OSError, TimeoutError) as exc:
            raise translate(exc, f"subscribing on {self.url}") from exc
        try:
            requests = [_monitor(handle, node_id, sampling) for handle, node_id, sampling in items]
            results = await self._call(
                lambda _: sub.create_monitored_items(requests), f"subscribing on {self.url}"
            )
            for (handle, node_id, _), result in zip(items, results, strict=True):
                if isinstance(result, ua.StatusCode):
                    yield handle, item_error(result, f"subscribing to {node_id.to_string()}")
            async for change in self._events(sub):
                yield change
        finally:
            if not self._lost.is_set():
                with contextlib.suppress(ua.UaError, OSError, TimeoutError):
                    async with asyncio.timeout(self._timeout):
                        await sub.delete()

    async def _events(self, sub: Subscription) -> AsyncIterator[Change]:
        iterator = aiter(sub)
        while True:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # asyncua awaits with asyncio.wait_for, which can drop a cancellation (Python 3.11).
                raise asyncio.CancelledError
            try:
                async with asyncio.timeout(self._config.watchdogInterval / 1000):
                    event = await anext(iterator)
            except TimeoutError:
                self._connected()  # raises once asyncua's supervisor has noticed a dead server
                continue
            except StopAsyncIteration:
                raise DeviceUnreachable(f"{self.url}: the subscription was closed") from None
            if isinstance(event, StatusChangeEvent):
                status = event.notification.Status
                if not status.is_good():
                    raise DeviceUnreachable(f"{self.url}: the subscription ended: {describe_status(status)}")
            elif isinstance(event, DataChangeEvent):
                item = event.data.monitored_item
                yield Change(item.ClientHandle, item.Value)

    async def _call(self, request: _Request[_T], what: str) -> _T:
        client = self._connected()
        try:
            return await request(client)
        except (ua.UaError, OSError, TimeoutError) as exc:
            error = translate(exc, what)
            if isinstance(error, DeviceUnreachable) and not self._lost.is_set():
                self._lost_reason = str(error)
                self._lost.set()
            raise error from exc


def _monitor(handle: int, node_id: ua.NodeId, sampling: float) -> ua.MonitoredItemCreateRequest:
    params = ua.MonitoringParameters()
    params.ClientHandle = handle
    params.SamplingInterval = sampling
    params.QueueSize = 1  # the latest value wins, as the twin keeps only the latest
    params.DiscardOldest = True
    request = ua.MonitoredItemCreateRequest()
    request.ItemToMonitor = ua.ReadValueId(NodeId=node_id, AttributeId=ua.AttributeIds.Value)
    request.MonitoringMode = ua.MonitoringMode.Reporting
    request.RequestedParameters = params
    return request
