"""The dashboard's HTTP and SSE API on real sockets, against the embedded API server, mosquitto and a
scripted node: what it shows, what it pushes, what it writes, what it refuses, and who may use it."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import orjson
import pytest

from cloud_sync import CloudSync
from cloud_sync.dashboard import DashboardSettings, DashboardUnavailable
from cloud_sync.resources import EVENTS
from tests.cloud_sync.conftest import MODEL, CloudStack, device_yaml
from tests.cloud_sync.dashboard.client import (
    TOKEN,
    Picture,
    base_url,
    dashboard_client,
    desired_reaches,
    start_with_dashboard,
)
from tests.cloud_sync.peer import now_ms, value
from twin.link import DeviceReport

THERMO = "default/thermo-1"


def target_of(device: dict) -> dict:  # type: ignore[type-arg]
    return next(p for p in device["spec"]["properties"] if p["name"] == "target")


async def test_the_page_and_its_api_need_the_token_and_the_tokens_address_logs_in(stack: CloudStack) -> None:
    cloud = await start_with_dashboard(stack)
    url = base_url(cloud)
    async with dashboard_client(url, TOKEN) as client:
        for path in ("/", "/api/state", "/api/stream", "/?token=wrong"):
            response = await client.get(path, headers={})
            assert response.status == 401, path
        response = await client.get("/api/state", headers={"Authorization": "Bearer wrong"})
        assert response.status == 401
        write = f"{url}/api/devices/default/thermo-1/properties/target/desired"
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            async with client.session.post(write, json={"value": "30"}, headers=headers) as post:
                assert post.status == 401
                assert (await post.json())["reason"] == "Unauthorized"
        # The script and style sheet hold no data: served to anyone.
        script = await client.get("/static/dashboard.js", headers={})
        assert script.status == 200
        assert script.headers["Content-Type"].startswith("text/javascript")
        assert (await client.get("/static/secrets.txt", headers={})).status == 404
        login = await client.get(f"/?token={TOKEN}", headers={})
        assert login.status == 303
        assert login.headers["Location"] == "/"
        cookie = login.cookies[f"edgetwin_dashboard_{cloud.dashboard.port}"]  # type: ignore[union-attr]
        assert cookie.value == TOKEN
        assert cookie["httponly"] is True
        assert cookie["samesite"] == "Strict"
        # The cookie alone opens the page and its API, as a browser uses them.
        page = await client.get("/", headers={})
        assert page.status == 200
        assert "Content-Security-Policy" in page.headers
        assert (await client.get("/api/state", headers={})).status == 200


async def test_the_snapshot_shows_each_device_with_its_model_and_each_node_with_its_heartbeat(
    stack: CloudStack,
) -> None:
    await stack.apply(MODEL + "---" + device_yaml("thermo-1", "node-a"))
    cloud = await start_with_dashboard(stack)
    async with dashboard_client(base_url(cloud), TOKEN) as client, client.stream() as stream:
        assert stream.frames == ["snapshot"]
        assert stream.retry == 1000
        device = stream.picture.devices[THERMO]
        assert (device["node"], device["model"], device["state"], device["problem"]) == (
            "node-a",
            "thermo-model",
            "unknown",
            None,
        )
        target = stream.picture.prop(THERMO, "target")
        assert (target["desired"], target["type"], target["writable"]) == ("20", "INT", True)
        assert (target["minimum"], target["maximum"], target["reported"]) == ("0", "100", None)
        assert stream.picture.prop(THERMO, "temperature")["writable"] is False
        # A node named by a Device but never heard of is shown as such.
        assert stream.picture.nodes["node-a"]["state"] == "NotRegistered"
        before = now_ms()
        async with stack.peer("node-a") as node:
            await node.heartbeat()
            picture = await stream.until(lambda p: p.nodes["node-a"]["state"] == "Ready")
        assert picture.nodes["node-a"]["lastHeartbeat"] >= before - 1000
        assert picture.nodes["node-a"]["devices"] == 1
        assert stream.frames[1:] and set(stream.frames[1:]) == {"changes"}
        assert (await client.state())["devices"][0]["id"] == THERMO


async def test_a_reported_value_reaches_an_open_stream_as_a_change(stack: CloudStack) -> None:
    await stack.apply(MODEL + "---" + device_yaml("thermo-1", "node-a"))
    cloud = await start_with_dashboard(stack)
    async with dashboard_client(base_url(cloud), TOKEN) as client, client.stream() as stream:
        async with stack.peer("node-a") as node:
            stamp = now_ms()
            await node.report(
                {
                    THERMO: DeviceReport(
                        twins={"temperature": value("21.5", stamp), "target": value("20", stamp)},
                        state="online",
                    )
                }
            )

            def reported(picture: Picture) -> bool:
                return picture.prop(THERMO, "temperature")["reported"] == "21.5"

            picture = await stream.until(reported)
        assert picture.prop(THERMO, "temperature")["reportedAt"] == stamp
        picture = await stream.until(lambda p: p.devices[THERMO]["state"] == "online")
        assert picture.prop(THERMO, "target")["inSync"] is True
        assert stream.picture.snapshots == 1  # updated by changes, never by a new snapshot


async def test_a_desired_value_set_through_the_api_is_patched_into_the_device_and_reaches_its_node(
    stack: CloudStack,
) -> None:
    await stack.apply(MODEL + "---" + device_yaml("thermo-1", "node-a"))
    cloud = await start_with_dashboard(stack)
    await stack.stamped("thermo-1")
    async with dashboard_client(base_url(cloud), TOKEN) as client, stack.peer("node-a") as node:
        await node.hello()
        async with client.stream() as stream:
            status, answer = await client.set_desired(THERMO, "target", "42")
            assert (status, answer) == (200, {"device": THERMO, "property": "target", "value": "42"})
            await desired_reaches(node, THERMO, "target", "42")
            picture = await stream.until(lambda p: p.prop(THERMO, "target")["desired"] == "42")
            assert picture.prop(THERMO, "target")["inSync"] is None  # nothing reported yet
        # A property that had no desired value gets one.
        assert (await client.set_desired(THERMO, "mode", "eco"))[0] == 200
    device = await stack.device("thermo-1")
    assert target_of(device)["desired"]["value"] == "42"
    await stack.wait("device/thermo-1", "jsonpath={.spec.properties[2].desired.value}=eco")


@pytest.mark.parametrize(
    ("prop", "body", "status", "reason", "says"),
    [
        ("target", {"value": "101"}, 400, "OutOfRange", "above the maximum 100"),
        ("target", {"value": "-1"}, 400, "OutOfRange", "below the minimum 0"),
        ("target", {"value": "warm"}, 400, "TypeMismatch", "is a INT"),
        ("target", {"value": "2 2"}, 400, "ForbiddenKey", "no spaces"),
        ("temperature", {"value": "20"}, 400, "ReadOnlyProperty", "ReadOnly"),
        ("ghost", {"value": "1"}, 400, "UnknownProperty", "no property 'ghost'"),
        ("target", {"value": 42}, 400, "InvalidPayload", "as a string"),
        ("target", b"{not json", 400, "InvalidPayload", "not JSON"),
    ],
)
async def test_a_value_the_model_refuses_is_answered_with_its_reason_and_changes_nothing(
    stack: CloudStack, prop: str, body: object, status: int, reason: str, says: str
) -> None:
    await stack.apply(MODEL + "---" + device_yaml("thermo-1", "node-a"))
    cloud = await start_with_dashboard(stack)
    await stack.stamped("thermo-1")
    before = await stack.device("thermo-1")
    async with dashboard_client(base_url(cloud), TOKEN) as client:
        raw = body if isinstance(body, bytes) else orjson.dumps(body)
        answer_status, answer = await client.set_desired(THERMO, prop, raw=raw)
    assert answer_status == status
    assert answer["reason"] == reason
    assert says in answer["error"]
    after = await stack.device("thermo-1")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


async def test_writes_to_unknown_devices_in_other_formats_too_large_or_without_a_model_are_refused(
    stack: CloudStack,
) -> None:
    await stack.apply(MODEL + "---" + device_yaml("lost-1", "node-a", model="no-such-model"))
    cloud = await start_with_dashboard(stack)
    async with dashboard_client(base_url(cloud), TOKEN) as client:
        status, answer = await client.set_desired("default/ghost", "target", "1")
        assert (status, answer["reason"]) == (404, "UnknownDevice")
        status, answer = await client.set_desired(THERMO, "target", raw=b"value=1", content_type="text/plain")
        assert (status, answer["reason"]) == (415, "UnsupportedMediaType")
        status, answer = await client.set_desired("default/lost-1", "target", "1")
        assert (status, answer["reason"]) == (409, "DeviceUnusable")
        assert "no DeviceModel default/no-such-model" in answer["error"]
        status, answer = await client.set_desired(THERMO, "target", raw=orjson.dumps({"value": "1" * 20_000}))
        assert (status, answer["reason"]) == (413, "InvalidPayload")


async def test_a_device_that_cannot_go_to_its_node_shows_its_problem_and_its_warning_event(
    stack: CloudStack,
) -> None:
    await stack.apply(MODEL + "---" + device_yaml("lost-1", "node-a", model="no-such-model"))
    cloud = await start_with_dashboard(stack)
    async with dashboard_client(base_url(cloud), TOKEN) as client, client.stream() as stream:

        def warned(picture: Picture) -> bool:
            return any(e["reason"] == "UnknownDeviceModel" for e in picture.events.values())

        picture = await stream.until(warned)
        event = next(e for e in picture.events.values() if e["reason"] == "UnknownDeviceModel")
        assert (event["type"], event["kind"], event["object"]) == ("Warning", "Device", "default/lost-1")
        assert event["time"] is not None
        assert picture.devices["default/lost-1"]["problem"]["reason"] == "UnknownDeviceModel"
        # Fixed: the problem goes away.
        await stack.apply(MODEL.replace("thermo-model", "no-such-model"))
        await stream.until(lambda p: p.devices["default/lost-1"]["problem"] is None)


async def test_a_node_whose_connection_dies_turns_not_ready_in_the_stream(stack: CloudStack) -> None:
    await stack.apply(MODEL + "---" + device_yaml("thermo-1", "node-a"))
    cloud = await start_with_dashboard(stack)
    async with dashboard_client(base_url(cloud), TOKEN) as client, client.stream() as stream:
        node = stack.peer("node-a")
        await node.connect()
        try:
            await node.heartbeat()
            await stream.until(lambda p: p.nodes["node-a"]["state"] == "Ready")
            node.die()  # the broker sends its will
            picture = await stream.until(lambda p: p.nodes["node-a"]["state"] == "NotReady")
        finally:
            await node.close()
    assert picture.nodes["node-a"]["reason"] == "NodeStatusUnknown"


async def test_streams_end_when_cloud_sync_stops_and_the_next_one_serves_the_same_address(
    stack: CloudStack,
) -> None:
    await stack.apply(MODEL + "---" + device_yaml("thermo-1", "node-a"))
    cloud = await start_with_dashboard(stack)
    port = cloud.dashboard.port  # type: ignore[union-attr]
    async with dashboard_client(base_url(cloud), TOKEN) as client:
        async with client.stream() as stream:
            await stack.stop_cloud(cloud)
            await stream.ended()
        with pytest.raises(aiohttp.ClientConnectionError):
            await client.state()
        again = await start_with_dashboard(stack, port=port)
        assert base_url(again) == client.url
        assert [d["id"] for d in (await client.state())["devices"]] == [THERMO]


async def test_a_port_in_use_stops_cloud_sync_at_once_naming_the_address(stack: CloudStack) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cloud = CloudSync(stack.make_settings(dashboard=DashboardSettings(token=TOKEN, port=port)), stack.api)
        with pytest.raises(DashboardUnavailable, match=f"127.0.0.1:{port}"):
            async with asyncio.timeout(20):
                await cloud.run()


async def test_only_events_about_devices_and_edge_nodes_are_shown(stack: CloudStack) -> None:
    await stack.apply(MODEL + "---" + device_yaml("thermo-1", "node-a"))
    cloud = await start_with_dashboard(stack)
    async with stack.peer("node-a") as node:
        await node.heartbeat()
        await stack.wait("node/node-a", "condition=Ready", namespace="default")
    for kind, name in (("Node", "node-a"), ("Node", "control-plane-1"), ("Pod", "web-1")):
        await stack.api.call(
            "POST",
            EVENTS.path("default"),
            body={
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": f"{name}.test", "namespace": "default"},
                "involvedObject": {"kind": kind, "name": name},
                "reason": "Tested",
                "message": f"about {name}",
                "type": "Normal",
            },
        )
    async with dashboard_client(base_url(cloud), TOKEN) as client, client.stream() as stream:
        picture = await stream.until(lambda p: "default/node-a.test" in p.events)
        assert "default/control-plane-1.test" not in picture.events
        assert "default/web-1.test" not in picture.events
        assert picture.events["default/node-a.test"]["object"] == "node-a"
