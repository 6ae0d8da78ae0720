"""What the node sends up: reports paced per report cycle, acks and resends, the outbox across a cut
link, edge-set desired values with their versions, device state."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edgemqtt.client import BrokerAddress
from tests.fixtures.brokers import Mosquitto
from tests.fixtures.mqtt import mqtt_probe
from tests.mappers.harness import until
from tests.node_agent.cloud_peer import CloudPeer, thermo, thermo_model
from tests.node_agent.nodes import joined_node
from twin.client import TwinClient
from twin.link import EdgeDesired, Report

MODEL = thermo_model()
T1 = "default/t1"


async def test_a_device_goes_up_at_most_once_per_report_cycle_with_the_latest_values_whatever_its_rate(
    embedded_mqtt: BrokerAddress, private_mosquitto: Mosquitto, tmp_path: Path
) -> None:
    peer = CloudPeer(private_mosquitto.address)
    peer.assign(thermo("t1", report_ms=200), MODEL)
    loop = asyncio.get_running_loop()
    async with peer.running(), joined_node(embedded_mqtt, private_mosquitto.address, tmp_path) as node:
        assert node.link is not None
        await node.link.synced_once.wait()
        first = len(peer.received)
        started = loop.time()
        updates = 0
        async with TwinClient(embedded_mqtt) as app:
            while updates < 300 or loop.time() - started < 1.0:
                updates += 1
                await app.report(T1, {"temp": f"{updates}.5", "secret": f"s{updates}"})
        last = f"{updates}.5"
        await peer.wait_for(
            "report",
            lambda r: (
                T1 in r.devices
                and r.devices[T1].twins.get("temp", None)
                and r.devices[T1].twins["temp"].value == last
            ),
            after=first,
        )
        elapsed = loop.time() - started
    reports = [r for r in peer.received[first:] if r.kind == "report" and T1 in r.body.devices]
    # One report per 0.2 s cycle, plus the first one at once and the last one after the loop ended.
    assert 2 <= len(reports) <= elapsed / 0.2 + 2, (len(reports), elapsed, updates)
    assert updates >= 300
    values = [float(v) for v in peer.reported(T1, "temp")]
    assert values == sorted(values)  # never an older value after a newer one
    assert all("secret" not in r.body.devices[T1].twins for r in reports)  # reportToCloud: false


async def test_a_first_value_and_a_state_change_go_up_at_once_and_later_changes_wait_for_the_cycle(
    embedded_mqtt: BrokerAddress, private_mosquitto: Mosquitto, tmp_path: Path
) -> None:
    peer = CloudPeer(private_mosquitto.address)
    peer.assign(thermo("t1", report_ms=600_000), MODEL)  # a ten-minute report cycle

    def carries(name: str, value: str) -> Callable[[Report], bool]:
        return lambda r: (
            T1 in r.devices and (twin := r.devices[T1].twins.get(name)) is not None and (twin.value == value)
        )

    async with peer.running(), joined_node(embedded_mqtt, private_mosquitto.address, tmp_path) as node:
        assert node.link is not None
        await node.link.synced_once.wait()
        async with TwinClient(embedded_mqtt) as app:
            await app.report(T1, {"temp": "21.5"})
            await peer.wait_for("report", carries("temp", "21.5"))  # not ten minutes later
            await app.report(T1, {"target": "20"})
            await peer.wait_for("report", carries("target", "20"))  # target's first value: at once too
            index = len(peer.received)
            await app.report(T1, {"temp": "22.5"})
        async with mqtt_probe(embedded_mqtt, "$hw/events/device/default/t1/state/update/result") as probe:
            await probe.request(
                "$hw/events/device/default/t1/state/update",
                {"event_id": "", "timestamp": 0, "state": "disconnected"},
                "$hw/events/device/default/t1/state/update/result",
            )
            offline: Report = await peer.wait_for(
                "report", lambda r: T1 in r.devices and r.devices[T1].state == "offline", after=index
            )
    # The state change went at once; the new temperature may ride along, but no report carried it
    # before: values the cloud already has wait for the report cycle.
    before = [e.body for e in peer.received[index:] if e.kind == "report" and e.body is not offline]
    assert not any(carries("temp", "22.5")(r) for r in before if r.seq < offline.seq)


async def test_unacknowledged_reports_are_sent_again_and_acknowledged_ones_are_not(
    embedded_mqtt: BrokerAddress, private_mosquitto: Mosquitto, tmp_path: Path
) -> None:
    peer = CloudPeer(private_mosquitto.address, auto_ack=False)
    peer.assign(thermo("t1", report_ms=100), MODEL)
    async with peer.running(), joined_node(embedded_mqtt, private_mosquitto.address, tmp_path) as node:
        assert node.link is not None
        await node.link.synced_once.wait()
        async with TwinClient(embedded_mqtt) as app:
            await app.report(T1, {"temp": "21.5"})

        def carries(value: str) -> object:
            return lambda r: (
                T1 in r.devices
                and r.devices[T1].twins.get("temp")
                and r.devices[T1].twins["temp"].value == value
            )

        sent: Report = await peer.wait_for("report", carries("21.5"))
        index = len(peer.received)
        again: Report = await peer.wait_for("report", carries("21.5"), after=index)  # after resend=0.5 s
        assert again.seq != sent.seq
        peer.ack("report", again.seq)
        acked = len(peer.received)
        # Five heartbeats (0.2 s apart) span two resend periods: nothing goes again after the ack.
        for _ in range(5):
            await peer.wait_for("heartbeat", after=len(peer.received))
        assert not [r for r in peer.received[acked:] if r.kind == "report" and T1 in r.body.devices]


async def test_acknowledged_values_stay_acknowledged_across_a_restart_and_owed_ones_go_again(
    embedded_mqtt: BrokerAddress, private_mosquitto: Mosquitto, tmp_path: Path
) -> None:
    peer = CloudPeer(private_mosquitto.address)
    peer.assign(thermo("t1", report_ms=100), MODEL)
    async with peer.running():
        async with joined_node(embedded_mqtt, private_mosquitto.address, tmp_path) as node:
            assert node.link is not None
            await node.link.synced_once.wait()
            async with TwinClient(embedded_mqtt) as app:
                await app.report(T1, {"temp": "21.5"})
            await peer.wait_for("report", lambda r: T1 in r.devices and "temp" in r.devices[T1].twins)
            await until(lambda: not node.link.outbox.unsaved)  # type: ignore[union-attr]
            peer.auto_ack = peer.take_desired = False  # as if nothing more reached the cloud
            async with TwinClient(embedded_mqtt) as app:
                await app.report(T1, {"temp": "22.5"})
                await app.set_desired(T1, {"target": "25"})
            await peer.wait_for(
                "report",
                lambda r: (
                    T1 in r.devices
                    and r.devices[T1].twins.get("temp")
                    and r.devices[T1].twins["temp"].value == "22.5"
                ),
            )
            await peer.wait_for("desired")
        peer.auto_ack = peer.take_desired = True
        restarted = len(peer.received)
        async with joined_node(embedded_mqtt, private_mosquitto.address, tmp_path) as node:
            again: Report = await peer.wait_for("report", after=restarted)
            desired: EdgeDesired = await peer.wait_for("desired", after=restarted)
    assert set(again.devices[T1].twins) == {"temp"}
    assert again.devices[T1].twins["temp"].value == "22.5"  # 21.5 was acknowledged: not sent again
    assert desired.devices[T1]["target"].value == "25"
    assert peer.devices[T1].desired["target"].value == "25"


async def test_the_outbox_across_a_cut_link_sends_only_the_latest_value_of_each_property(
    embedded_mqtt: BrokerAddress, private_mosquitto: Mosquitto, tmp_path: Path
) -> None:
    peer = CloudPeer(private_mosquitto.address)
    peer.assign(thermo("t1", report_ms=100), MODEL)
    async with peer.running(), joined_node(embedded_mqtt, private_mosquitto.address, tmp_path) as node:
        assert node.link is not None
        await node.link.synced_once.wait()
        async with TwinClient(embedded_mqtt) as app:
            await app.report(T1, {"temp": "1.5"})
            await peer.wait_for("report", lambda r: T1 in r.devices and "temp" in r.devices[T1].twins)
            private_mosquitto.stop()
            for value in range(2, 60):  # the device keeps changing with the cloud away
                await app.report(T1, {"temp": f"{value}.5"})
            async with mqtt_probe(embedded_mqtt, "$hw/events/device/+/+/state/update/result") as probe:
                await probe.request(
                    "$hw/events/device/default/t1/state/update",
                    {"event_id": "", "timestamp": 0, "state": "ok"},
                    "$hw/events/device/default/t1/state/update/result",
                )
            cut = len(peer.received)
            private_mosquitto.start()
            after: Report = await peer.wait_for(
                "report", lambda r: T1 in r.devices and "temp" in r.devices[T1].twins, after=cut
            )
    assert after.devices[T1].twins["temp"].value == "59.5"
    assert after.devices[T1].state == "online"  # "ok" as the CRD spells it
    values = [float(v) for v in peer.reported(T1, "temp")]
    assert values == sorted(values)
    assert [v for v in values if v > 1.5] == [59.5]  # nothing of what happened in between


async def test_desired_values_set_at_the_edge_go_up_with_their_versions_and_the_cloud_takes_them(
    embedded_mqtt: BrokerAddress, private_mosquitto: Mosquitto, tmp_path: Path
) -> None:
    peer = CloudPeer(private_mosquitto.address)
    peer.assign(thermo("t1"), MODEL, {"target": ("22", 3, 1)})
    async with peer.running(), joined_node(embedded_mqtt, private_mosquitto.address, tmp_path) as node:
        assert node.link is not None
        await node.link.synced_once.wait()
        async with TwinClient(embedded_mqtt) as app:
            await app.set_desired(T1, {"target": "25"})
        up: EdgeDesired = await peer.wait_for("desired")
        observed: Report = await peer.wait_for(
            "report",
            lambda r: (
                T1 in r.devices
                and r.devices[T1].observed_desired.get("target")
                and r.devices[T1].observed_desired["target"].value == "25"
            ),
        )
    value = up.devices[T1]["target"]
    assert (value.value, value.cloud, value.edge) == ("25", 3, 2)
    assert peer.devices[T1].desired["target"] == value  # the version rule let the cloud take it
    assert observed.devices[T1].observed_desired["target"].value == "25"
    assert all(set(d) == {"target"} for d in (m.devices[T1] for m in peer.of_kind("desired")))


@pytest.mark.parametrize("store_delay", [0.0, 0.5], ids=["store as it is", "a slow store"])
async def test_a_cloud_value_newer_than_the_edge_one_wins_and_is_not_sent_back(
    embedded_mqtt: BrokerAddress, private_mosquitto: Mosquitto, tmp_path: Path, store_delay: float
) -> None:
    peer = CloudPeer(private_mosquitto.address)
    peer.assign(thermo("t1"), MODEL, {"target": ("22", 1, 0)})
    async with peer.running(), joined_node(embedded_mqtt, private_mosquitto.address, tmp_path) as node:
        assert node.link is not None and node.service is not None
        await node.link.synced_once.wait()
        apply = node.service.apply_assignments
        stored = asyncio.Event()

        async def storing(*args: Any, **kwargs: Any) -> None:
            # The twin holds the new value at once; with a slow store (an SD card) storing it takes a
            # while, and the uplink, woken by the change, runs meanwhile.
            await apply(*args, **kwargs)
            await asyncio.sleep(store_delay)
            stored.set()

        node.service.apply_assignments = storing  # type: ignore[method-assign]
        peer.change(peer.assign(thermo("t1"), MODEL, {"target": ("28", 2, 0)}))
        await stored.wait()
        async with TwinClient(embedded_mqtt) as app:
            state = await app.get(T1)
        for _ in range(4):  # heartbeats 0.2 s apart: well past the moment anything would go
            await peer.wait_for("heartbeat", after=len(peer.received))
    assert state["target"].desired == "28"
    assert peer.of_kind("desired") == []


async def test_device_state_goes_up_as_the_crd_spells_it_unless_the_device_says_not_to(
    embedded_mqtt: BrokerAddress, private_mosquitto: Mosquitto, tmp_path: Path
) -> None:
    peer = CloudPeer(private_mosquitto.address)
    peer.assign(thermo("t1", report_ms=100), MODEL)
    peer.assign(thermo("quiet", report_ms=100, state_report={"reportToCloud": False}), MODEL)
    async with peer.running(), joined_node(embedded_mqtt, private_mosquitto.address, tmp_path) as node:
        assert node.link is not None
        await node.link.synced_once.wait()
        async with mqtt_probe(embedded_mqtt, "$hw/events/device/+/+/state/update/result") as probe:
            for device in ("t1", "quiet"):
                await probe.request(
                    f"$hw/events/device/default/{device}/state/update",
                    {"event_id": "", "timestamp": 0, "state": "disconnected"},
                    f"$hw/events/device/default/{device}/state/update/result",
                )
        async with TwinClient(embedded_mqtt) as app:
            await app.report("default/quiet", {"temp": "3.5"})
        offline: Report = await peer.wait_for(
            "report", lambda r: T1 in r.devices and r.devices[T1].state == "offline"
        )
        await peer.wait_for(
            "report", lambda r: "default/quiet" in r.devices and "temp" in r.devices["default/quiet"].twins
        )
    assert offline.devices[T1].state == "offline"
    assert all(
        r.devices["default/quiet"].state is None
        for r in peer.of_kind("report")
        if "default/quiet" in r.devices
    )


async def test_after_a_reconnect_each_device_state_goes_up_again_though_acknowledged_and_unchanged(
    embedded_mqtt: BrokerAddress, private_mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """While the node was away the cloud showed its devices as ``unknown``: they must be told again."""
    peer = CloudPeer(private_mosquitto.address)
    peer.assign(thermo("t1", report_ms=100), MODEL)
    async with peer.running(), joined_node(embedded_mqtt, private_mosquitto.address, tmp_path) as node:
        assert node.link is not None
        await node.link.synced_once.wait()
        async with mqtt_probe(embedded_mqtt, "$hw/events/device/+/+/state/update/result") as probe:
            await probe.request(
                "$hw/events/device/default/t1/state/update",
                {"event_id": "", "timestamp": 0, "state": "ok"},
                "$hw/events/device/default/t1/state/update/result",
            )
        await peer.wait_for("report", lambda r: T1 in r.devices and r.devices[T1].state == "online")
        outbox = node.link.outbox
        await until(lambda: outbox.marks(T1).state is not None)  # acknowledged
        private_mosquitto.stop()
        cut = len(peer.received)
        private_mosquitto.start()
        again: Report = await peer.wait_for(
            "report", lambda r: T1 in r.devices and r.devices[T1].state is not None, after=cut
        )
    assert again.devices[T1].state == "online"
