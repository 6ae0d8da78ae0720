"""Reloading the password file and ACL: the embedded broker does what mosquitto 2.0 does on SIGHUP.

Each test runs against mosquitto (SIGHUP) and the embedded broker (``EmbeddedBroker.reload``):
a user added can log in; a connected client whose user is gone, or whose password changed, is
disconnected; a connected client keeps its session and is held to the new ACL from its next
PUBLISH on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from edgemqtt import BrokerAddress, EmbeddedBroker, MqttClient, NotAuthorised, password_entry
from tests.edgemqtt.raw import Raw
from tests.fixtures.brokers import Mosquitto, mosquitto_binary

TIMEOUT = 10.0  # a guard against hanging, never an assertion about speed


@dataclass
class Reloadable:
    address: BrokerAddress
    password_file: Path
    acl_file: Path
    reload: Callable[[], None]

    def write(self, users: dict[str, str], acl: str) -> None:
        self.password_file.write_text("".join(password_entry(u, p) + "\n" for u, p in users.items()))
        self.acl_file.write_text(acl)

    async def login(self, user: str, password: str) -> MqttClient:
        """Log in, trying again while the broker may not have reloaded yet (mosquitto: a moment later)."""
        address = self.address.with_credentials(user, password)
        async with asyncio.timeout(TIMEOUT):
            while True:
                client = MqttClient(address, reconnect_delays=(60.0,))
                try:
                    await client.connect()
                except NotAuthorised:
                    await asyncio.sleep(0.05)
                    continue
                return client


ACL = "user alice\ntopic readwrite a/#\nuser bob\ntopic readwrite b/#\n"


@pytest.fixture(params=["mosquitto", "embedded"])
async def broker(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Reloadable]:
    password_file, acl_file = tmp_path / "passwd", tmp_path / "acl"
    files = Reloadable(BrokerAddress(), password_file, acl_file, lambda: None)
    files.write({"alice": "a-secret", "bob": "b-secret"}, ACL)
    if request.param == "mosquitto":
        server = Mosquitto(
            mosquitto_binary(),
            tmp_path,
            "per_listener_settings false\nallow_anonymous false\n"
            f"password_file {password_file}\nacl_file {acl_file}\n",
        )
        server.start()
        try:
            yield Reloadable(server.address, password_file, acl_file, server.reload)
        finally:
            server.stop()
    else:
        embedded = EmbeddedBroker("127.0.0.1", 0, password_file=password_file, acl_file=acl_file)
        await embedded.start()
        try:
            yield Reloadable(embedded.address, password_file, acl_file, embedded.reload)
        finally:
            await embedded.stop()


async def test_a_user_added_to_the_password_file_logs_in_after_a_reload(broker: Reloadable) -> None:
    with pytest.raises(NotAuthorised):
        await MqttClient(broker.address.with_credentials("carol", "c-secret")).connect()
    broker.write(
        {"alice": "a-secret", "bob": "b-secret", "carol": "c-secret"}, ACL + "user carol\ntopic c/#\n"
    )
    broker.reload()
    carol = await broker.login("carol", "c-secret")
    await carol.close()


@pytest.mark.parametrize("change", ["user removed", "password changed"])
async def test_a_connected_client_no_longer_authorised_is_disconnected_at_the_reload(
    broker: Reloadable, change: str
) -> None:
    bob = await Raw.open(broker.address)
    await bob.connect("bob-client", username="bob", password=b"b-secret")
    alice = await Raw.open(broker.address)
    await alice.connect("alice-client", username="alice", password=b"a-secret")
    users = {"alice": "a-secret"} if change == "user removed" else {"alice": "a-secret", "bob": "new"}
    broker.write(users, ACL)
    broker.reload()
    await bob.closed_by_broker()
    await alice.publish("a/still-here", b"1", qos=1)  # alice is untouched
    for raw in (alice, bob):
        raw.writer.close()


async def test_a_connected_client_is_held_to_the_new_acl_from_its_next_publish(broker: Reloadable) -> None:
    broker.write({"alice": "a-secret", "bob": "b-secret"}, ACL + "topic write a/#\n")
    broker.reload()
    received: asyncio.Queue[bytes] = asyncio.Queue()
    alice = await broker.login("alice", "a-secret")
    alice._on_message = lambda message: received.put_nowait(message.payload)
    await alice.subscribe("a/#")
    bob = await broker.login("bob", "b-secret")
    await bob.publish_confirmed("a/x", b"before")
    async with asyncio.timeout(TIMEOUT):
        assert await received.get() == b"before"
    # bob may no longer write a/#; carol, added at the same time, shows when the broker has reloaded.
    broker.write({"alice": "a-secret", "bob": "b-secret", "carol": "c"}, ACL)
    broker.reload()
    await (await broker.login("carol", "c")).close()
    await bob.publish_confirmed("a/x", b"after")  # acknowledged and dropped
    await alice.publish_confirmed("a/x", b"marker")
    async with asyncio.timeout(TIMEOUT):
        assert await received.get() == b"marker"
    assert bob.connected
    await bob.close()
    await alice.close()
