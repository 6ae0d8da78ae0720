"""The node's end of the cloud link against a scripted cloud: hellos, syncs, device changes.

The cloud broker is a mosquitto of the test's own (stopped and started to cut the link) or the
embedded broker; the node's local broker is the embedded one. The cloud is ``CloudPeer``, a real
MQTT client speaking ``twin.link``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edgemqtt.broker import embedded_broker, password_entry
from edgemqtt.client import BrokerAddress
from mappers.virtual.device import forget_all, simulated
from tests.fixtures.brokers import Mosquitto, SecureFiles
from tests.mappers.harness import until
from tests.node_agent.cloud_peer import NODE, CloudPeer, thermo, thermo_model
from tests.node_agent.nodes import TOKEN, cloud_settings, joined_node
from twin.client import TwinClient
from twin.engine import Version
from twin.errors import UnknownDevice
from twin.link import Hello, Listening, Sync, node_password

MODEL = thermo_model()


@pytest.fixture(params=["mosquitto", "embedded"])
async def cloud(request: pytest.FixtureRequest) -> AsyncIterator[BrokerAddress]:
    """The cloud broker: a mosquitto of the test's own, and the embedded broker (``make run``)."""
    if request.param == "mosquitto":
        server: Mosquitto = request.getfixturevalue("private_mosquitto")
        yield server.address
    else:
        async with embedded_broker("127.0.0.1", 0) as address:
            yield address


async def test_the_node_says_hello_and_serves_the_devices_its_sync_assigns(
    embedded_mqtt: BrokerAddress, cloud: BrokerAddress, tmp_path: Path
) -> None:
    peer = CloudPeer(cloud)
    peer.assign(thermo("t1", generation=4), MODEL, {"target": ("22", 1, 0)})
    async with peer.running(), joined_node(embedded_mqtt, cloud, tmp_path) as node:
        hello: Hello = await peer.wait_for("hello")
        assert node.link is not None
        await node.link.synced_once.wait()
        async with TwinClient(embedded_mqtt) as client:
            state = await client.get("default/t1")
        assert node.service is not None
        held = node.service.held()
    assert hello.node == NODE and hello.devices == {}
    assert state["target"].desired == "22"
    assert held == {"default/t1": (4, {"target": Version(1, 0)})}


async def test_after_a_cloud_broker_restart_the_node_says_hello_again_and_nothing_is_relisted(
    embedded_mqtt: BrokerAddress, private_mosquitto: Mosquitto, tmp_path: Path
) -> None:
    peer = CloudPeer(private_mosquitto.address)
    peer.assign(thermo("t1", generation=2), MODEL, {"target": ("22", 1, 0)})
    async with peer.running(), joined_node(embedded_mqtt, private_mosquitto.address, tmp_path):
        first: Hello = await peer.wait_for("hello")
        await peer.wait_for("heartbeat")
        seen = len(peer.received)
        private_mosquitto.restart()
        again: Hello = await peer.wait_for("hello", after=seen)
        await until(lambda: len(peer.syncs) == 2)
    assert again.id != first.id
    assert again.devices["default/t1"].generation == 2
    assert again.devices["default/t1"].desired == {"target": (1, 0)}
    assert peer.syncs[1] == Sync(hello=again.id)  # up to date: nothing re-listed


async def test_a_device_the_cloud_no_longer_assigns_is_removed_at_the_next_sync(
    embedded_mqtt: BrokerAddress, private_mosquitto: Mosquitto, tmp_path: Path
) -> None:
    peer = CloudPeer(private_mosquitto.address)
    peer.assign(thermo("t1"), MODEL)
    peer.assign(thermo("t2"), MODEL)
    async with peer.running(), joined_node(embedded_mqtt, private_mosquitto.address, tmp_path) as node:
        assert node.link is not None and node.service is not None
        await node.link.synced_once.wait()
        assert set(node.service.devices) == {"default/t1", "default/t2"}
        del peer.devices["default/t2"]  # taken away while the node was not connected
        seen = len(peer.received)
        private_mosquitto.restart()
        await peer.wait_for("hello", after=seen)
        await until(lambda: len(peer.syncs) == 2)
        await until(lambda: "default/t2" not in node.service.devices)  # type: ignore[union-attr]
        async with TwinClient(embedded_mqtt) as client:
            with pytest.raises(UnknownDevice):
                await client.get("default/t2")
            assert "target" in await client.get("default/t1")
    assert peer.syncs[1].removed == ["default/t2"]
    assert (tmp_path / "removed" / "default__t2.json").exists()  # its twin is kept, as docs/twin.md says


async def test_device_changes_reconfigure_the_device_and_its_mapper_and_a_delete_stops_it(
    embedded_mqtt: BrokerAddress, private_mosquitto: Mosquitto, tmp_path: Path
) -> None:
    forget_all()
    peer = CloudPeer(private_mosquitto.address)
    first = peer.assign(thermo("t1", generation=1), MODEL)
    async with (
        peer.running(),
        joined_node(embedded_mqtt, private_mosquitto.address, tmp_path, mappers=["virtual"]) as node,
    ):
        assert node.link is not None and node.mappers is not None and node.service is not None
        runner, service = node.mappers, node.service
        await node.link.synced_once.wait()
        await until(lambda: "default/t1" in runner.workers)
        # The mapper reads the (simulated) device; its value goes up to the cloud.
        await peer.wait_for(
            "report", lambda r: "default/t1" in r.devices and "temp" in r.devices["default/t1"].twins
        )
        assert peer.reported("default/t1", "temp")[-1] == "20.5"
        # A new generation (the cloud dropped a property) and a new desired value, in one change.
        changed = thermo("t1", generation=2)
        changed = changed.model_copy(
            update={"spec": changed.spec.model_copy(update={"properties": changed.spec.properties[:2]})}
        )
        peer.change(peer.assign(changed, MODEL, {"target": ("26", 1, 0)}))
        await until(lambda: simulated("default/t1").values.get("target") == 26)
        worker = runner.workers["default/t1"]
        assert [p.name for p in worker.member.device.spec.properties] == ["temp", "target"]
        assert service.held()["default/t1"] == (2, {"target": Version(1, 0)})
        # A late, older definition changes nothing.
        peer.change(first)
        peer.delete("default/t1")
        await until(lambda: "default/t1" not in runner.workers)
        assert "default/t1" not in service.devices


async def test_malformed_or_stale_messages_from_the_cloud_are_ignored_and_the_link_goes_on(
    embedded_mqtt: BrokerAddress,
    private_mosquitto: Mosquitto,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "node_agent")
    peer = CloudPeer(private_mosquitto.address)
    async with peer.running(), joined_node(embedded_mqtt, private_mosquitto.address, tmp_path) as node:
        assert node.link is not None and node.service is not None
        await node.link.synced_once.wait()
        stale = Sync(hello="an-old-hello", devices=[peer.assign(thermo("old"), MODEL)])
        del peer.devices["default/old"]
        peer.raw("sync", stale.model_dump_json().encode())
        peer.raw("sync", b"not json")
        peer.raw("device", b'{"op": "upsert"}')
        peer.raw("ack", b'{"kind": "weather", "seq": 1}')
        peer.raw("ack", b'{"kind": "report", "seq": 12345}')  # not awaited: ignored
        peer.raw("device", b'{"op": "delete", "id": "default/never-here"}')
        peer.raw("listening", b'{"replica": 7}')
        peer.raw("listening", b'{"replica": "another"}')  # synced already: no new hello
        peer.change(peer.assign(thermo("t1"), MODEL))
        await until(lambda: "default/t1" in node.service.devices)  # type: ignore[union-attr]
        assert "default/old" not in node.service.devices
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "a sync for hello an-old-hello, not the latest: ignored" in logged
    assert "a malformed down/sync from the cloud, ignored" in logged
    assert "a down/device upsert without its assignment" in logged
    assert "a malformed down/ack from the cloud, ignored: kind" in logged
    assert "a malformed down/listening from the cloud, ignored: replica" in logged
    assert len(peer.of_kind("hello")) == 1


async def test_a_device_the_twin_cannot_serve_is_refused_by_name_and_the_others_are_served(
    embedded_mqtt: BrokerAddress,
    private_mosquitto: Mosquitto,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    peer = CloudPeer(private_mosquitto.address)
    bad = thermo("bad")
    bad = bad.model_copy(
        update={
            "spec": bad.spec.model_copy(
                update={
                    "properties": [
                        *bad.spec.properties,
                        bad.spec.properties[0].model_copy(update={"name": "x"}),
                    ]
                }
            )
        }
    )
    peer.assign(bad, MODEL)
    peer.assign(thermo("good"), MODEL, {"target": ("99", 1, 0)})  # out of range: refused, device served
    async with peer.running(), joined_node(embedded_mqtt, private_mosquitto.address, tmp_path) as node:
        assert node.link is not None and node.service is not None
        await node.link.synced_once.wait()
        assert set(node.service.devices) == {"default/good"}
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "the cloud assigned device default/bad, which cannot be served" in logged
    assert "has no property 'x'" in logged
    assert "default/good: the cloud sent a desired value the twin refuses" in logged


async def test_the_node_joins_a_cloud_broker_over_tls_with_the_password_its_token_makes(
    embedded_mqtt: BrokerAddress, secure_files: SecureFiles, tmp_path: Path
) -> None:
    passwords = tmp_path / "passwords"
    passwords.write_text(
        password_entry(NODE, node_password(TOKEN, NODE))
        + "\n"
        + password_entry("edgetwin-cloud", "cloud")
        + "\n"
    )
    tls = secure_files.tls
    async with embedded_broker(
        "127.0.0.1", 0, password_file=passwords, tls_cert=tls.server_cert, tls_key=tls.server_key
    ) as secure:
        cloud = secure.with_tls_files(tls.ca)
        peer = CloudPeer(cloud.with_credentials("edgetwin-cloud", "cloud"))
        peer.assign(thermo("t1"), MODEL)
        async with peer.running(), joined_node(embedded_mqtt, cloud, tmp_path / "node") as node:
            assert node.link is not None and node.service is not None
            await node.link.synced_once.wait()
            assert set(node.service.devices) == {"default/t1"}


async def test_a_node_whose_hello_went_unanswered_says_it_again_when_a_cloud_sync_begins_listening(
    embedded_mqtt: BrokerAddress, private_mosquitto: Mosquitto, tmp_path: Path
) -> None:
    # No answer to the first hello, as when it went before any cloud-sync subscribed; an hour's
    # resend and heartbeat: without ``down/listening`` the node would say neither again in this test.
    peer = CloudPeer(private_mosquitto.address, auto_sync=False)
    peer.assign(thermo("t1"), MODEL)
    settings = cloud_settings(private_mosquitto.address, resend=3600, heartbeat=3600)
    async with (
        peer.running(),
        joined_node(embedded_mqtt, private_mosquitto.address, tmp_path, settings=settings) as node,
    ):
        first: Hello = await peer.wait_for("hello")
        await peer.wait_for("heartbeat")
        seen = len(peer.received)
        peer.raw("listening", Listening(replica="replica-2").model_dump_json().encode())
        again: Hello = await peer.wait_for("hello", after=seen)
        await peer.wait_for("heartbeat", after=seen)  # the Node's readiness need not wait an hour
        peer.answer(again)
        assert node.link is not None
        async with asyncio.timeout(15):
            await node.link.synced_once.wait()
        assert node.service is not None
        held = node.service.held()
    assert again.id != first.id
    assert set(held) == {"default/t1"}
