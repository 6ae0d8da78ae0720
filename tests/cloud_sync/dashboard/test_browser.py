"""The dashboard in a real headless Chromium: live values without reload, desired values set from the
page reaching the Device and its node, refusals with the model's reason, and a page that outlives a
cloud-sync restart. The node is the scripted peer of ``tests/cloud_sync/peer.py`` on real mosquitto,
and in the last test a real node agent with the virtual mapper."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, ConsoleMessage, Locator, Page, expect

from cloud_sync import CloudSync
from edgemqtt import BrokerAddress
from mappers.virtual.device import forget_all, simulated
from tests.cloud_sync.conftest import MODEL, CloudStack, device_yaml
from tests.cloud_sync.dashboard.client import TOKEN, base_url, desired_reaches, start_with_dashboard
from tests.cloud_sync.peer import NodePeer, now_ms, value
from tests.node_agent.cloud_peer import NODE
from tests.node_agent.nodes import cloud_settings, joined_node
from twin.link import DeviceReport

THERMO = "default/thermo-1"
WAIT = 20_000  # ms: a guard against hanging, never an assertion about speed


@dataclass
class Dashboard:
    page: Page
    cloud: CloudSync
    problems: list[str] = field(default_factory=list)

    def prop(self, name: str, device: str = THERMO) -> Locator:
        return self.page.locator(f'[data-device="{device}"] [data-property="{name}"]')

    async def set_desired(self, name: str, text: str) -> Locator:
        row = self.prop(name)
        await row.locator("input").fill(text)
        await row.locator("button").click()
        return row.locator(".result")


async def open_dashboard(browser: BrowserContext, cloud: CloudSync) -> Dashboard:
    page = await browser.new_page()
    dashboard = Dashboard(page, cloud)

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            dashboard.problems.append(message.text)

    page.on("console", console)
    page.on("pageerror", lambda error: dashboard.problems.append(str(error)))
    await page.goto(f"{base_url(cloud)}/?token={TOKEN}")
    assert page.url == f"{base_url(cloud)}/"  # the token left the address bar
    await expect(page.locator("#connection")).to_have_text("live", timeout=WAIT)
    # Marks this document: a reload would lose it.
    await page.evaluate("window.sameDocument = true")
    return dashboard


async def still_same_document(page: Page) -> bool:
    return bool(await page.evaluate("window.sameDocument === true"))


@pytest.fixture
async def node(stack: CloudStack) -> AsyncIterator[NodePeer]:
    await stack.apply(MODEL + "---" + device_yaml("thermo-1", "node-a"))
    async with stack.peer("node-a") as peer:
        yield peer


async def test_a_reported_value_and_the_nodes_heartbeat_update_in_the_page_without_reload(
    stack: CloudStack, node: NodePeer, browser: BrowserContext
) -> None:
    dashboard = await open_dashboard(browser, await start_with_dashboard(stack))
    page = dashboard.page
    await expect(dashboard.prop("temperature").locator(".reported")).to_have_text("")
    await expect(page.locator('[data-node="node-a"] .state')).to_have_text("NotRegistered")
    await node.heartbeat()
    await expect(page.locator('[data-node="node-a"] .state')).to_have_text("Ready", timeout=WAIT)
    await expect(page.locator('[data-node="node-a"] .heartbeat')).to_contain_text("s ago")
    for reading in ("21.5", "22.25"):
        await node.report({THERMO: DeviceReport(twins={"temperature": value(reading)}, state="online")})
        await expect(dashboard.prop("temperature").locator(".reported")).to_have_text(reading, timeout=WAIT)
    await expect(page.locator(f'[data-device="{THERMO}"] .state')).to_have_text("online", timeout=WAIT)
    assert await still_same_document(page)
    assert dashboard.problems == []


async def test_a_desired_value_set_in_the_page_reaches_the_device_and_its_node(
    stack: CloudStack, node: NodePeer, browser: BrowserContext
) -> None:
    cloud = await start_with_dashboard(stack)
    await stack.stamped("thermo-1")
    await node.hello()
    dashboard = await open_dashboard(browser, cloud)
    desired = dashboard.prop("target").locator(".desired")
    await expect(desired).to_have_text("20")
    await expect(dashboard.prop("temperature").locator(".read-only")).to_be_visible()
    await expect(dashboard.prop("temperature").locator("form")).to_be_hidden()
    await node.report({THERMO: DeviceReport(twins={"target": value("20")})})
    await expect(dashboard.prop("target").locator(".reported")).to_have_text("20", timeout=WAIT)
    await expect(desired).to_have_class("desired")

    result = await dashboard.set_desired("target", "42")
    await expect(result).to_have_text("set to 42", timeout=WAIT)
    await desired_reaches(node, THERMO, "target", "42")  # cloud-sync's own path carried it down
    await stack.wait("device/thermo-1", "jsonpath={.spec.properties[1].desired.value}=42")
    await expect(desired).to_have_text("42", timeout=WAIT)
    await expect(desired).to_have_class("desired pending")  # the device has not reported it yet
    await node.report({THERMO: DeviceReport(twins={"target": value("42")})})
    await expect(dashboard.prop("target").locator(".reported")).to_have_text("42", timeout=WAIT)
    await expect(desired).to_have_class("desired", timeout=WAIT)
    assert await still_same_document(dashboard.page)
    assert dashboard.problems == []


async def test_a_value_the_model_refuses_shows_its_reason_in_the_page_and_changes_nothing(
    stack: CloudStack, node: NodePeer, browser: BrowserContext
) -> None:
    cloud = await start_with_dashboard(stack)
    await stack.stamped("thermo-1")
    before = await stack.device("thermo-1")
    dashboard = await open_dashboard(browser, cloud)
    for text, reason in (("101", "above the maximum 100"), ("warm", "is a INT"), ("", "is a INT")):
        result = await dashboard.set_desired("target", text)
        await expect(result).to_contain_text(reason, timeout=WAIT)
        await expect(result).to_have_class("result refused")
    await expect(dashboard.prop("target").locator("input")).to_have_value("")  # the last one typed
    await expect(dashboard.prop("target").locator(".desired")).to_have_text("20")
    after = await stack.device("thermo-1")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    # The browser logs the refused requests (HTTP 400) as console errors: those and nothing else.
    assert all("400" in problem for problem in dashboard.problems), dashboard.problems


async def test_a_value_being_typed_survives_live_updates_of_its_device(
    stack: CloudStack, node: NodePeer, browser: BrowserContext
) -> None:
    dashboard = await open_dashboard(browser, await start_with_dashboard(stack))
    field_ = dashboard.prop("target").locator("input")
    await field_.fill("3")
    await field_.focus()
    await node.report({THERMO: DeviceReport(twins={"temperature": value("30.5")}, state="online")})
    await expect(dashboard.prop("temperature").locator(".reported")).to_have_text("30.5", timeout=WAIT)
    await dashboard.page.keyboard.type("3")  # still focused: the update moved nothing
    await expect(field_).to_have_value("33")


async def test_the_page_reconnects_after_cloud_sync_restarts_and_goes_on_updating(
    stack: CloudStack, node: NodePeer, browser: BrowserContext
) -> None:
    cloud = await start_with_dashboard(stack)
    port = cloud.dashboard.port  # type: ignore[union-attr]
    dashboard = await open_dashboard(browser, cloud)
    connection = dashboard.page.locator("#connection")
    await stack.stop_cloud(cloud)
    await expect(connection).to_have_text("cloud-sync unreachable: reconnecting…", timeout=WAIT)
    await start_with_dashboard(stack, port=port)
    await expect(connection).to_have_text("live", timeout=WAIT)
    await node.report({THERMO: DeviceReport(twins={"temperature": value("18.5", now_ms())})})
    await expect(dashboard.prop("temperature").locator(".reported")).to_have_text("18.5", timeout=WAIT)
    assert await still_same_document(dashboard.page)


async def test_a_page_without_the_token_is_told_how_to_get_in(
    stack: CloudStack, browser: BrowserContext
) -> None:
    cloud = await start_with_dashboard(stack)
    page = await browser.new_page()
    response = await page.goto(f"{base_url(cloud)}/")
    assert response is not None and response.status == 401
    await expect(page.locator("body")).to_contain_text("needs the dashboard's token")
    assert await page.locator("#connection").count() == 0  # not the dashboard


VIRTUAL = """
apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata: {name: boiler, namespace: default}
spec:
  deviceModelRef: {name: thermo-model}
  nodeName: %s
  protocol: {protocolName: virtual}
  properties:
    - name: temperature
      reportToCloud: true
      collectCycle: 100
      reportCycle: 200
      visitors: {protocolName: virtual, configData: {initial: "60.5", step: 0.5}}
    - name: target
      reportToCloud: true
      collectCycle: 100
      reportCycle: 200
      desired: {value: "55"}
      visitors: {protocolName: virtual, configData: {initial: "55"}}
    - name: mode
      visitors: {protocolName: virtual, configData: {initial: "eco"}}
  stateReport: {reportToCloud: true}
"""


async def test_with_a_real_node_agent_the_page_follows_its_device_and_its_desired_value_reaches_the_device(
    stack: CloudStack, embedded_mqtt: BrokerAddress, browser: BrowserContext, tmp_path: Path
) -> None:
    """The whole loop: page -> Kubernetes API -> cloud-sync -> node agent's twin -> virtual mapper ->
    device, and the value read back from the device -> Device status -> page."""
    await stack.apply(MODEL + "---" + VIRTUAL % NODE)
    cloud = await start_with_dashboard(stack)
    settings = cloud_settings(stack.broker, token=stack.token)
    try:
        async with joined_node(
            embedded_mqtt, stack.broker, tmp_path / "node", mappers=["virtual"], settings=settings
        ):
            dashboard = await open_dashboard(browser, cloud)
            page = dashboard.page
            boiler = "default/boiler"
            await expect(page.locator(f'[data-node="{NODE}"] .state')).to_have_text("Ready", timeout=WAIT)
            await expect(page.locator(f'[data-device="{boiler}"] .state')).to_have_text(
                "online", timeout=WAIT
            )
            reported = dashboard.prop("temperature", boiler).locator(".reported")
            await expect(reported).not_to_have_text("", timeout=WAIT)
            first = await reported.text_content()
            await expect(reported).not_to_have_text(first or "", timeout=WAIT)  # the sensor drifts: live

            row = dashboard.prop("target", boiler)
            await row.locator("input").fill("72")
            await row.locator("button").click()
            await expect(row.locator(".result")).to_have_text("set to 72", timeout=WAIT)
            # Read back from the device by the mapper, reported by the node, written into status.
            await expect(row.locator(".reported")).to_have_text("72", timeout=WAIT)
            await expect(row.locator(".desired")).to_have_class("desired", timeout=WAIT)
            assert simulated(boiler).values["target"] == 72
            assert await still_same_document(page)
            assert dashboard.problems == []
    finally:
        forget_all()
