"""A scripted cloud for the node agent's tests: a real MQTT client on the cloud broker speaking
``twin.link`` the way docs/cloud-link.md says cloud-sync does.

It holds the devices it assigns to one node (``assign``), answers every hello with a sync of what
differs from what the hello announced, sends device changes, takes edge-set desired values by the
version rule, and acknowledges reports and desired values, or withholds its acks (``auto_ack``).
Everything the node sends is kept in ``received``, in arrival order, for the tests to look at.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

from edgemqtt.client import BrokerAddress, Message, MqttClient
from twin.link import (
    Ack,
    DesiredValue,
    DeviceAssignment,
    DeviceChange,
    EdgeDesired,
    Heartbeat,
    Hello,
    Report,
    Sync,
    down_topic,
    parse_link_topic,
)
from twin.models import Device, DeviceModel

NODE = "edge-node-1"
DownKind = Literal["sync", "device", "ack", "listening"]
UP_MODELS: dict[str, type[BaseModel]] = {
    "hello": Hello,
    "report": Report,
    "desired": EdgeDesired,
    "heartbeat": Heartbeat,
}


def thermo_model(namespace: str = "default") -> DeviceModel:
    return DeviceModel.model_validate(
        {
            "metadata": {"name": "thermo-model", "namespace": namespace},
            "spec": {
                "protocol": "virtual",
                "properties": [
                    {"name": "temp", "type": "FLOAT", "accessMode": "ReadOnly"},
                    {"name": "target", "type": "INT", "minimum": "5", "maximum": "30"},
                    {"name": "secret", "type": "STRING"},
                ],
            },
        }
    )


def thermo(
    name: str,
    *,
    report_ms: int = 1000,
    generation: int = 1,
    node: str = NODE,
    temp: dict[str, Any] | None = None,
    state_report: dict[str, Any] | None = None,
) -> Device:
    """A thermostat: ``temp`` and ``target`` go to the cloud every ``report_ms``, ``secret`` never."""
    spec: dict[str, Any] = {
        "deviceModelRef": {"name": "thermo-model"},
        "nodeName": node,
        "protocol": {"protocolName": "virtual", "configData": {}},
        "properties": [
            {
                "name": "temp",
                "reportCycle": report_ms,
                "reportToCloud": True,
                "collectCycle": 50,
                "visitors": {"protocolName": "virtual", "configData": temp or {"initial": "20.5"}},
            },
            {
                "name": "target",
                "reportCycle": report_ms,
                "reportToCloud": True,
                "visitors": {"protocolName": "virtual", "configData": {"initial": "20"}},
            },
            {"name": "secret", "reportToCloud": False, "visitors": {"protocolName": "virtual"}},
        ],
    }
    if state_report is not None:
        spec["stateReport"] = state_report
    return Device.model_validate(
        {"metadata": {"name": name, "namespace": "default", "generation": generation}, "spec": spec}
    )


@dataclass
class Received:
    kind: str
    body: Any


@dataclass
class CloudPeer:
    broker: BrokerAddress
    node: str = NODE
    auto_sync: bool = True
    auto_ack: bool = True
    #: Take edge-set desired values by the version rule (False: as if they never arrived).
    take_desired: bool = True
    devices: dict[str, DeviceAssignment] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    syncs: list[Sync] = field(default_factory=list)
    _client: MqttClient | None = None
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    # -- what the cloud holds -------------------------------------------------------------------------

    def assign(
        self, device: Device, model: DeviceModel, desired: dict[str, tuple[str, int, int]] | None = None
    ) -> DeviceAssignment:
        generation = int((device.metadata.model_extra or {}).get("generation", 1))
        assignment = DeviceAssignment(
            device=device,
            model=model,
            generation=generation,
            desired={n: DesiredValue(value=v, cloud=c, edge=e) for n, (v, c, e) in (desired or {}).items()},
        )
        self.devices[device.id] = assignment
        return assignment

    def sync_for(self, hello: Hello) -> Sync:
        changed = []
        for device_id, assignment in self.devices.items():
            held = hello.devices.get(device_id)
            pairs = {n: (d.cloud, d.edge) for n, d in assignment.desired.items()}
            if held is None or held.generation != assignment.generation or held.desired != pairs:
                changed.append(assignment)
        removed = [d for d in hello.devices if d not in self.devices]
        return Sync(hello=hello.id, devices=changed, removed=removed)

    # -- the session ----------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[CloudPeer]:
        client = MqttClient(self.broker, client_id=f"cloud-peer-{self.node}", on_message=self._on_message)
        async with client:
            self._client = client
            await client.subscribe(f"edgetwin/v1/nodes/{self.node}/up/#")
            yield self
        self._client = None

    def _on_message(self, message: Message) -> None:
        topic = parse_link_topic(message.topic)
        assert topic is not None, message.topic
        body = UP_MODELS[topic.kind].model_validate_json(message.payload)
        self.received.append(Received(topic.kind, body))
        if isinstance(body, Hello) and self.auto_sync:
            self.answer(body)
        elif isinstance(body, EdgeDesired):
            if self.take_desired:
                self._take_desired(body)
            if self.auto_ack:
                self.ack("desired", body.seq)
        elif isinstance(body, Report) and self.auto_ack:
            self.ack("report", body.seq)
        self._arrived.set()

    def _take_desired(self, body: EdgeDesired) -> None:
        # The version rule of docs/cloud-link.md: taken when nobody changed it in the cluster since.
        for device_id, values in body.devices.items():
            assignment = self.devices.get(device_id)
            if assignment is None:
                continue
            desired = dict(assignment.desired)
            for name, value in values.items():
                held = desired.get(name, DesiredValue(value="", cloud=0, edge=0))
                if value.cloud == held.cloud and value.edge > held.edge:
                    desired[name] = value
            self.devices[device_id] = assignment.model_copy(update={"desired": desired})

    def _send(self, kind: DownKind, body: BaseModel) -> None:
        self.raw(kind, body.model_dump_json().encode())

    def answer(self, hello: Hello) -> Sync:
        sync = self.sync_for(hello)
        self.syncs.append(sync)
        self._send("sync", sync)
        return sync

    def ack(self, kind: Literal["report", "desired"], seq: int) -> None:
        self._send("ack", Ack(kind=kind, seq=seq))

    def change(self, assignment: DeviceAssignment) -> None:
        self.devices[assignment.device.id] = assignment
        self._send("device", DeviceChange(op="upsert", assignment=assignment))

    def delete(self, device_id: str) -> None:
        self.devices.pop(device_id, None)
        self._send("device", DeviceChange(op="delete", id=device_id))

    def raw(self, kind: DownKind, payload: bytes) -> None:
        assert self._client is not None
        self._client.publish(down_topic(self.node, kind), payload, qos=1)

    # -- waiting --------------------------------------------------------------------------------------

    def of_kind(self, kind: str) -> list[Any]:
        return [r.body for r in self.received if r.kind == kind]

    async def wait_for(
        self,
        kind: str,
        matches: Callable[[Any], bool] = lambda _: True,
        *,
        after: int = 0,
        timeout: float = 15,
    ) -> Any:
        """The first ``kind`` message from index ``after`` of ``received`` that ``matches``."""
        async with asyncio.timeout(timeout):
            while True:
                for entry in self.received[after:]:
                    if entry.kind == kind and matches(entry.body):
                        return entry.body
                self._arrived.clear()
                await self._arrived.wait()

    def reported(self, device_id: str, name: str) -> list[str]:
        """Every reported value of one property that went up, in order."""
        return [
            report.devices[device_id].twins[name].value
            for report in self.of_kind("report")
            if device_id in report.devices and name in report.devices[device_id].twins
        ]
