"""A scripted node for cloud-sync's tests: the node's end of the cloud link, spoken by a test.

It is a real MQTT client (``edgemqtt``) on the real cloud broker, logging in as a node does
(client id ``edgetwin-node-{node}``, persistent session, user ``{node}``, the password derived from
the join token, a will that says ``online: false``) and speaking ``twin.link``: hellos, reports,
edge desired values, heartbeats. What cloud-sync sends down is kept per kind for the test to wait
on. With ``resend`` it sends again what is not acknowledged, as a node agent's outbox does.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import time
import uuid
from collections.abc import Callable
from types import TracebackType
from typing import Self

import orjson
from pydantic import BaseModel

from edgemqtt import BrokerAddress, Message, MqttClient, Will
from twin.link import (
    Ack,
    DesiredValue,
    DeviceChange,
    DeviceReport,
    EdgeDesired,
    Heartbeat,
    HeldDevice,
    Hello,
    Report,
    ReportedValue,
    Sync,
    node_password,
    up_topic,
)
from twin.link_pods import HeldPod

TIMEOUT = 20.0  # a guard against hanging, never an assertion about speed


def now_ms() -> int:
    return int(time.time() * 1000)


def value(text: str, timestamp: int | None = None) -> ReportedValue:
    return ReportedValue(value=text, timestamp=now_ms() if timestamp is None else timestamp)


class NodePeer:
    def __init__(
        self,
        broker: BrokerAddress,
        node: str,
        token: str,
        *,
        password: str | None = None,
        resend: float | None = None,
    ) -> None:
        self.node = node
        login = broker.with_credentials(
            node, password if password is not None else node_password(token, node)
        )
        will = Will(
            up_topic(node, "heartbeat"), Heartbeat(sent_at=0, online=False).model_dump_json().encode(), qos=1
        )
        self.client = MqttClient(
            login,
            client_id=f"edgetwin-node-{node}",
            clean_session=False,
            will=will,
            on_message=self._received,
            reconnect_delays=(0.05, 0.2),
            refused_delay=0.1,
        )
        self.syncs: asyncio.Queue[Sync] = asyncio.Queue()
        self.changes: asyncio.Queue[DeviceChange] = asyncio.Queue()
        self.acks: list[Ack] = []
        self.other: list[Message] = []
        self._other_changed = asyncio.Event()
        self._acked = asyncio.Condition()
        self._seq = itertools.count(1)
        self._unacked: dict[tuple[str, int], tuple[str, bytes]] = {}
        self._resend = resend
        self._resender: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def connect(self) -> None:
        async with asyncio.timeout(TIMEOUT):
            await self.client.connect(retry=True)
        await self.client.subscribe(f"edgetwin/v1/nodes/{self.node}/down/#", qos=1)
        if self._resend is not None:
            self._resender = asyncio.create_task(self._resend_loop(self._resend), name=f"resend {self.node}")

    async def close(self) -> None:
        if self._resender is not None:
            self._resender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._resender
        await self.client.close()

    def die(self) -> None:
        """Lose the connection without DISCONNECT: the broker sends the will."""
        self.client.refused_delay = 3600
        self.client._delays = (3600.0,)  # no reconnect within the test
        sock = self.client.socket
        assert sock is not None, "not connected"
        sock.shutdown(socket.SHUT_RDWR)  # type: ignore[attr-defined]

    # -- down ------------------------------------------------------------------------------------------

    def _received(self, message: Message) -> None:
        kind = message.topic.rsplit("/", 1)[-1]
        body = orjson.loads(message.payload)
        if kind == "sync":
            self.syncs.put_nowait(Sync.model_validate(body))
        elif kind == "device":
            self.changes.put_nowait(DeviceChange.model_validate(body))
        elif kind == "ack":
            ack = Ack.model_validate(body)
            self.acks.append(ack)
            self._unacked.pop((ack.kind, ack.seq), None)
            asyncio.get_running_loop().create_task(self._notify())
        else:
            self.other.append(message)
            self._other_changed.set()

    async def _notify(self) -> None:
        async with self._acked:
            self._acked.notify_all()

    async def wait_ack(self, kind: str, seq: int, timeout: float = TIMEOUT) -> None:
        async with asyncio.timeout(timeout), self._acked:
            await self._acked.wait_for(lambda: any(a.kind == kind and a.seq == seq for a in self.acks))

    def acked(self, kind: str, seq: int) -> bool:
        return any(a.kind == kind and a.seq == seq for a in self.acks)

    async def other_message(
        self, predicate: Callable[[Message], bool], *, after: int = 0, timeout: float = TIMEOUT
    ) -> tuple[int, Message]:
        """The first message of another kind (``down/pod``, ``down/logs``...) from index ``after``
        on that ``predicate`` accepts, with its index."""
        async with asyncio.timeout(timeout):
            while True:
                for index in range(after, len(self.other)):
                    if predicate(self.other[index]):
                        return index, self.other[index]
                after = len(self.other)
                self._other_changed.clear()
                await self._other_changed.wait()

    async def change(self, timeout: float = TIMEOUT) -> DeviceChange:
        async with asyncio.timeout(timeout):
            return await self.changes.get()

    async def change_of(self, device_id: str, op: str = "upsert", timeout: float = TIMEOUT) -> DeviceChange:
        """The next change of ``device_id`` with ``op`` (others are skipped)."""
        async with asyncio.timeout(timeout):
            while True:
                change = await self.changes.get()
                changed = change.assignment.device.id if change.assignment is not None else change.id
                if changed == device_id and change.op == op:
                    return change

    def drain(self) -> list[DeviceChange]:
        drained = []
        while not self.changes.empty():
            drained.append(self.changes.get_nowait())
        return drained

    # -- up --------------------------------------------------------------------------------------------

    async def _send(self, kind: str, message: BaseModel) -> None:
        await self.client.publish_confirmed(up_topic(self.node, kind), message.model_dump_json())

    async def hello(
        self,
        devices: dict[str, HeldDevice] | None = None,
        timeout: float = TIMEOUT,
        *,
        pods: dict[str, HeldPod] | None = None,
    ) -> Sync:
        """Say hello (naming ``pods``: a node that runs pods) and return the sync that answers it."""
        hello = Hello(node=self.node, id=uuid.uuid4().hex, sent_at=now_ms(), devices=devices or {}, pods=pods)
        await self._send("hello", hello)
        async with asyncio.timeout(timeout):
            while True:
                sync = await self.syncs.get()
                if sync.hello == hello.id:
                    return sync

    async def report(self, devices: dict[str, DeviceReport]) -> int:
        seq = next(self._seq)
        report = Report(seq=seq, devices=devices)
        self._unacked[("report", seq)] = ("report", report.model_dump_json().encode())
        await self._send("report", report)
        return seq

    async def desired(self, devices: dict[str, dict[str, DesiredValue]]) -> int:
        seq = next(self._seq)
        message = EdgeDesired(seq=seq, devices=devices)
        self._unacked[("desired", seq)] = ("desired", message.model_dump_json().encode())
        await self._send("desired", message)
        return seq

    async def heartbeat(self, *, online: bool = True, **fields: object) -> None:
        await self._send(
            "heartbeat", Heartbeat.model_validate({"sent_at": now_ms(), "online": online, **fields})
        )

    async def raw(self, kind: str, payload: bytes) -> None:
        await self.client.publish_confirmed(up_topic(self.node, kind), payload)

    async def _resend_loop(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            for kind, payload in list(self._unacked.values()):
                self.client.publish(up_topic(self.node, kind), payload, qos=1)
