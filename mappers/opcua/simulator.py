"""A simulated OPC UA machine on a real asyncua server: the sample boiler, and any node a test adds.

Tests, benchmarks and the single-machine stack need an OPC UA server that does not exist. This is
asyncua's own server (the same library the mapper uses as a client, speaking the binary protocol
over TCP), with the boiler of ``crds/samples/opcua.yaml`` in namespace 2, values that change over
time, writable variables that refuse a wrong type with ``BadTypeMismatch`` and read-only ones that
refuse writes with ``BadUserAccessDenied``, like a real server. Optional security: a server
certificate, the client certificates it trusts (others get ``BadCertificateUntrusted``) and user
names with passwords.

asyncua's server takes ~1.7 s to build OPC UA's standard address space (~0.1 s once it is cached,
``mappers.opcua.address_space``) and has no free-port option, so a simulator is made once
(``start``) and can then be stopped and started again on the same port in milliseconds
(``stop``/``start``: the "server restarted" case), keeping its values.

``python -m mappers.opcua.simulator`` serves the sample on opc.tcp://127.0.0.1:4840/edgetwin/boiler/.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from asyncua import Node, Server, ua
from asyncua.common.callback import CallbackType, ServerItemCallback
from asyncua.common.utils import ServiceError
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.user_managers import UserManager
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from mappers.opcua.address_space import UNREADABLE_SHELF, plan_shelf
from mappers.simulation import sample_main, wander

__all__ = [
    "NAMESPACE",
    "SAMPLE_NODES",
    "OpcuaSimulator",
    "SimulatorSecurity",
    "serve_sample",
]

log = logging.getLogger(__name__)

# The server logs every service fault (each refused write) at ERROR; the simulator says what it
# does itself, so asyncua stays quiet unless someone configured its loggers on purpose.
_asyncua_log = logging.getLogger("asyncua")
if _asyncua_log.level == logging.NOTSET:
    _asyncua_log.setLevel(logging.CRITICAL)

#: Namespace URI of the simulated nodes: index 2, the first one a server registers.
NAMESPACE = "urn:edgetwin:simulator"
SAMPLE_PATH = "/edgetwin/boiler/"


@dataclass(frozen=True)
class SampleNode:
    name: str  # BrowseName, and the string node id "Boiler.<name>"
    value: Any
    vtype: ua.VariantType
    writable: bool = False


#: The boiler of crds/samples/opcua.yaml, under Objects/Boiler (``ns=2;s=Boiler.<name>``).
SAMPLE_NODES = (
    SampleNode("Temperature", 21.5, ua.VariantType.Double),  # drifts around 21.5
    SampleNode("Pressure", 1.2, ua.VariantType.Float),  # drifts around 1.2
    SampleNode("Valve", False, ua.VariantType.Boolean, writable=True),
    SampleNode("PressureLimit", 2.5, ua.VariantType.Float, writable=True),
    SampleNode("BurnerStarts", 0, ua.VariantType.UInt32),  # counts up
    SampleNode("Model", "EB-200", ua.VariantType.String),
)


@dataclass(frozen=True)
class SimulatorSecurity:
    """A secured endpoint: Basic256Sha256 (Sign and SignAndEncrypt), no anonymous access.

    ``trusted`` are the client certificates (PEM or DER files) the server accepts; ``users`` the
    user names and passwords it accepts. ``allow_none`` also offers the unsecured endpoint.
    """

    certificate: Path
    private_key: Path
    trusted: tuple[Path, ...] = ()
    users: Mapping[str, str] = field(default_factory=dict)
    allow_none: bool = False


class _Users(UserManager):
    """asyncua's user manager protocol: a user, or None to refuse the session."""

    def __init__(self, users: Mapping[str, str]) -> None:
        self._users = dict(users)

    def get_user(
        self,
        iserver: object,
        username: str | None = None,
        password: str | None = None,
        certificate: object = None,
    ) -> User | None:
        if username is None:
            return User(role=UserRole.User)
        if self._users.get(username) == password:
            return User(role=UserRole.User, name=username)
        return None


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


def _load_cert(path: Path) -> x509.Certificate:
    data = path.read_bytes()
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)


class OpcuaSimulator:
    """``async with OpcuaSimulator(port=4840) as sim: ...`` serves the sample boiler."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 4840,
        path: str = SAMPLE_PATH,
        *,
        security: SimulatorSecurity | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.path = path if path.startswith("/") else "/" + path
        self.security = security
        self.namespace = 2
        self._server: Server | None = None
        self._running = False
        self._boiler: Node | None = None
        self._nodes: dict[str, Node] = {}
        #: Value reads clients made, by node name: proof that a subscribed node is not polled.
        self.reads: Counter[str] = Counter()

    @property
    def url(self) -> str:
        return f"opc.tcp://{self.host}:{self.port}{self.path}"

    @property
    def running(self) -> bool:
        return self._running

    def node_id(self, name: str) -> str:
        """``ns=2;s=Boiler.Temperature`` for ``Temperature``."""
        return f"ns={self.namespace};s=Boiler.{name}"

    async def _build(self) -> Server:
        security = self.security
        users = _Users(security.users) if security else None
        server = Server(user_manager=users)
        plan = plan_shelf()
        try:
            await server.init(plan.shelf)
        except UNREADABLE_SHELF:
            plan.abandon()
            if not plan.cached:
                raise
            server = Server(user_manager=users)  # the cache was unreadable: the address space in memory
            await server.init()
        except BaseException:
            plan.abandon()
            raise
        plan.finish()
        server.set_endpoint(self.url)
        server.set_server_name("edgetwin simulated boiler")
        await server.set_application_uri("urn:edgetwin:simulator:boiler")
        if security is not None:
            await server.load_certificate(str(security.certificate))
            await server.load_private_key(str(security.private_key))
            policies = [
                ua.SecurityPolicyType.Basic256Sha256_Sign,
                ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
            ]
            if security.allow_none:
                policies.insert(0, ua.SecurityPolicyType.NoSecurity)
            server.set_security_policy(policies)
            server.set_identity_tokens(
                [ua.UserNameIdentityToken] if security.users else [ua.AnonymousIdentityToken]
            )
            trusted = {_der(_load_cert(p)) for p in security.trusted}

            async def validate(cert: x509.Certificate, app: ua.ApplicationDescription) -> None:
                if _der(cert) not in trusted:
                    raise ServiceError(ua.StatusCodes.BadCertificateUntrusted)

            server.set_certificate_validator(validate)
        server.subscribe_server_callback(CallbackType.PreRead, self._count_reads)
        self.namespace = await server.register_namespace(NAMESPACE)
        ns = self.namespace
        self._boiler = await server.nodes.objects.add_object(
            ua.NodeId.from_string(f"ns={ns};s=Boiler"), f"{ns}:Boiler"
        )
        for spec in SAMPLE_NODES:
            await self._add(spec.name, spec.value, spec.vtype, writable=spec.writable)
        return server

    def _count_reads(self, event: ServerItemCallback, _dispatcher: object) -> None:
        if not event.is_external:
            return
        prefix = "Boiler."
        for item in event.request_params.NodesToRead:
            node_id = item.NodeId
            if (
                item.AttributeId == ua.AttributeIds.Value
                and node_id.NamespaceIndex == self.namespace
                and isinstance(node_id.Identifier, str)
                and node_id.Identifier.startswith(prefix)
            ):
                self.reads[node_id.Identifier[len(prefix) :]] += 1

    async def _add(
        self,
        name: str,
        value: Any,
        vtype: ua.VariantType,
        *,
        writable: bool,
        data_type: ua.VariantType | None = None,
    ) -> Node:
        assert self._boiler is not None
        ns = self.namespace
        node = await self._boiler.add_variable(
            ua.NodeId.from_string(self.node_id(name)),
            f"{ns}:{name}",
            ua.Variant(value, vtype),
            datatype=None if data_type is None else ua.NodeId(ua.Int32(data_type.value)),
        )
        if writable:
            await node.set_writable()
        self._nodes[name] = node
        return node

    async def add_variable(
        self,
        name: str,
        value: Any,
        vtype: ua.VariantType,
        *,
        writable: bool = False,
        data_type: ua.VariantType | None = None,
    ) -> str:
        """A new variable ``Boiler.<name>`` (a test's own node); its node id. Works while running.

        ``data_type`` declares a DataType other than the value's type: a misconfigured server,
        which then refuses writes of its declared type with ``BadTypeMismatch``.
        """
        if self._server is None:
            raise RuntimeError("start the simulator first")
        if name not in self._nodes:
            await self._add(name, value, vtype, writable=writable, data_type=data_type)
        return self.node_id(name)

    async def start(self) -> None:
        if self._server is None:
            self._server = await self._build()
        if not self._running:
            await self._server.start()
            self._running = True
            log.info("simulated OPC UA boiler on %s", self.url)

    async def stop(self) -> None:
        """Stop serving (clients see the connection close); ``start`` serves again on the same port."""
        if self._server is not None and self._running:
            self._running = False
            await self._server.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def _node(self, name: str) -> Node:
        node = self._nodes.get(name)
        if node is None:
            raise KeyError(f"the simulator has no node Boiler.{name}")
        return node

    async def set(self, name: str, value: Any) -> None:
        """Change a value as the machine's own sensors would, keeping the node's type."""
        node = self._node(name)
        current = await node.read_data_value()
        if current.Value is None:
            await node.write_value(value)
        else:
            await node.write_value(ua.Variant(value, current.Value.VariantType))

    async def get(self, name: str) -> Any:
        return await self._node(name).read_value()


async def serve_sample(
    host: str = "127.0.0.1", port: int = 4840, *, drift: float = 1.0, ready: asyncio.Event | None = None
) -> None:
    """Serve the sample boiler until cancelled (``edgetwin up`` hosts this); ``ready`` once it listens."""
    async with OpcuaSimulator(host, port) as sim:

        async def step(tick: int) -> None:
            # Temperature and pressure wander and the burner counts up, so that a demo shows changes.
            await sim.set("Temperature", round(21.5 + math.sin(tick / 10), 2))
            await sim.set("Pressure", round(1.2 + 0.1 * math.sin(tick / 7), 2))
            if tick % 10 == 0:
                await sim.set("BurnerStarts", tick // 10)

        await wander(step, drift=drift, ready=ready)


def main(argv: Sequence[str] | None = None) -> None:
    sample_main(argv, "Serve the sample OPC UA boiler of crds/samples/opcua.yaml.", 4840, serve_sample)


if __name__ == "__main__":
    main()
