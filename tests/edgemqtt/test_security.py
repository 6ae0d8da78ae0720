"""TLS, passwords and the ACL, against mosquitto and the embedded broker configured with the same files.

``secure_broker`` runs each test on both: a mosquitto 2.0 and the embedded broker, each with a
password file made by Debian's ``mosquitto_passwd``, one ACL file (``app`` may do anything, a node
only publish and read under ``nodes/<its user name>/``) and TLS listeners with certificates made
in the test. Where the two brokers differ, the test says so and asserts what each really does.
"""

from __future__ import annotations

import asyncio
from urllib.parse import quote

import pytest

from edgemqtt.address import BrokerAddress
from edgemqtt.client import Message, MqttClient
from edgemqtt.errors import BrokerUnavailable, NotAuthorised, SubscriptionRefused, TlsRefused
from tests.fixtures.brokers import APP_PASSWORD, APP_USER, NODE_PASSWORD, NODE_USER, SecureBroker

TIMEOUT = 10.0  # a guard against hanging, never an assertion about speed


def app(address: BrokerAddress) -> BrokerAddress:
    return address.with_credentials(APP_USER, APP_PASSWORD)


def node(address: BrokerAddress) -> BrokerAddress:
    return address.with_credentials(NODE_USER, NODE_PASSWORD)


async def next_message(queue: asyncio.Queue[Message]) -> Message:
    async with asyncio.timeout(TIMEOUT):
        return await queue.get()


async def test_right_credentials_work_over_plain_tcp_and_tls(secure_broker: SecureBroker) -> None:
    for address in (secure_broker.plain, secure_broker.tls):
        received: asyncio.Queue[Message] = asyncio.Queue()
        async with MqttClient(app(address), on_message=received.put_nowait) as client:
            await client.subscribe("plant/#")
            await client.publish_confirmed("plant/line1", b"running")
            assert await next_message(received) == Message("plant/line1", b"running")


async def test_a_password_with_reserved_characters_works_percent_encoded(secure_broker: SecureBroker) -> None:
    assert set("@:/%") <= set(NODE_PASSWORD)
    tls = secure_broker.tls
    url = f"mqtts://{NODE_USER}:{quote(NODE_PASSWORD, safe='')}@127.0.0.1:{tls.port}"
    address = BrokerAddress.parse(url).with_tls_files(ca_file=tls.ca_file)
    received: asyncio.Queue[Message] = asyncio.Queue()
    async with MqttClient(address, on_message=received.put_nowait) as client:
        await client.subscribe(f"nodes/{NODE_USER}/#")
        await client.publish_confirmed(f"nodes/{NODE_USER}/state", b"up")
        assert await next_message(received) == Message(f"nodes/{NODE_USER}/state", b"up")


@pytest.mark.parametrize(
    ("user", "password"),
    [(NODE_USER, "wrong"), ("nobody", "x"), (None, None), (NODE_USER, None)],
    ids=["wrong password", "unknown user", "anonymous", "no password"],
)
async def test_wrong_credentials_are_refused_with_the_named_reason(
    secure_broker: SecureBroker, user: str | None, password: str | None
) -> None:
    address = secure_broker.tls.with_credentials(user, password)
    with pytest.raises(NotAuthorised, match=r"refused the connection.*: not authorised") as refused:
        await MqttClient(address).connect(timeout=TIMEOUT)
    # mosquitto 2.0 answers CONNACK 5 (not 4) to a wrong password in MQTT 3.1.1; the embedded broker too.
    assert refused.value.code == 5
    assert password is None or password not in str(refused.value)


async def test_a_publish_outside_the_acl_is_acknowledged_and_dropped(secure_broker: SecureBroker) -> None:
    received: asyncio.Queue[Message] = asyncio.Queue()
    async with (
        MqttClient(app(secure_broker.plain), on_message=received.put_nowait) as watcher,
        MqttClient(node(secure_broker.plain)) as node1,
    ):
        await watcher.subscribe("nodes/#")
        await node1.publish_confirmed("nodes/node2/state", b"forged")  # PUBACK, as mosquitto does
        await node1.publish_confirmed(f"nodes/{NODE_USER}/state", b"mine")  # the fence: in order
        assert await next_message(received) == Message(f"nodes/{NODE_USER}/state", b"mine")
        assert received.empty()


async def test_a_subscription_reads_only_what_the_acl_allows(secure_broker: SecureBroker) -> None:
    received: asyncio.Queue[Message] = asyncio.Queue()
    async with (
        MqttClient(node(secure_broker.plain), on_message=received.put_nowait) as node1,
        MqttClient(app(secure_broker.plain)) as publisher,
    ):
        await node1.subscribe("nodes/#")  # wider than its subtree: granted, and filtered per message
        await publisher.publish_confirmed("nodes/node2/desired", b"not for node1")
        await publisher.publish_confirmed(f"nodes/{NODE_USER}/desired", b"for node1")
        assert await next_message(received) == Message(f"nodes/{NODE_USER}/desired", b"for node1")
        assert received.empty()


async def test_a_subscription_wholly_outside_the_acl(secure_broker: SecureBroker) -> None:
    received: asyncio.Queue[Message] = asyncio.Queue()
    async with (
        MqttClient(node(secure_broker.plain), on_message=received.put_nowait) as node1,
        MqttClient(app(secure_broker.plain)) as publisher,
    ):
        if secure_broker.kind == "mosquitto":
            # mosquitto 2.0.11 grants every SUBSCRIBE (SUBACK 1) and then delivers nothing outside the ACL.
            await node1.subscribe("nodes/node2/#")
        else:
            # The embedded broker says so at once: SUBACK 0x80, a permanent error naming the filter.
            with pytest.raises(SubscriptionRefused, match="nodes/node2/#"):
                await node1.subscribe("nodes/node2/#")
        await node1.subscribe(f"nodes/{NODE_USER}/#")
        await publisher.publish_confirmed("nodes/node2/desired", b"not for node1")
        await publisher.publish_confirmed(f"nodes/{NODE_USER}/desired", b"fence")
        assert await next_message(received) == Message(f"nodes/{NODE_USER}/desired", b"fence")
        assert received.empty()


async def test_host_names_are_checked(secure_broker: SecureBroker) -> None:
    # A valid certificate from the trusted CA, but for other.example: refused, and permanent.
    with pytest.raises(TlsRefused, match=r"not trusted.*(match|mismatch)") as refused:
        await MqttClient(app(secure_broker.wrong_name)).connect(timeout=TIMEOUT)
    assert refused.value.code is None


async def test_a_broker_certificate_from_another_ca_is_refused(secure_broker: SecureBroker) -> None:
    address = secure_broker.tls.with_tls_files(ca_file=secure_broker.files.tls.stranger_ca)
    with pytest.raises(TlsRefused, match="not trusted"):
        await MqttClient(app(address)).connect(timeout=TIMEOUT)


async def test_plain_mqtt_to_a_tls_port_fails_as_unavailable(secure_broker: SecureBroker) -> None:
    tls = secure_broker.tls
    with pytest.raises(BrokerUnavailable):
        await MqttClient(app(BrokerAddress(tls.host, tls.port))).connect(timeout=3)


async def test_a_client_certificate_is_required_where_the_broker_asks(secure_broker: SecureBroker) -> None:
    files = secure_broker.files.tls
    if secure_broker.kind == "mosquitto":
        # mosquitto ends TLS 1.3 with an alert after the handshake; whether the client reads the
        # alert (TlsRefused) or the reset that follows it (BrokerUnavailable) is a race on the socket.
        with pytest.raises((TlsRefused, BrokerUnavailable), match=r"refused the TLS|closed the connection"):
            await MqttClient(app(secure_broker.mutual)).connect(timeout=TIMEOUT)
    else:
        # The embedded broker answers CONNACK 5 (asyncio would drop the connection without an alert).
        with pytest.raises(NotAuthorised, match="not authorised"):
            await MqttClient(app(secure_broker.mutual)).connect(timeout=TIMEOUT)
    with_cert = secure_broker.mutual.with_tls_files(cert_file=files.client_cert, key_file=files.client_key)
    async with MqttClient(app(with_cert)) as client:
        await client.publish_confirmed("plant/mutual", b"ok")
        assert client.connected
