"""Two cloud-sync replicas share the up stream; one is killed (SIGKILL) mid-stream and nothing is lost.

One replica runs in the test's process, the other is a real ``edgetwin cloud`` process against the
same API server, broker and data directory. The node sends again what is not acknowledged
(``resend``), as a node agent's outbox does: what the killed replica took and never wrote is
written by the other.
"""

from __future__ import annotations

import asyncio
import urllib.request

from tests.cloud_sync.conftest import MODEL, CloudStack, device_yaml
from tests.cloud_sync.peer import value
from tests.fixtures.processes import service
from tests.fixtures.tools import free_port
from twin.link import DeviceReport


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return response.read().decode()  # type: ignore[no-any-return]


def reports_in(metrics: str) -> float:
    line = next(
        m for m in metrics.splitlines() if m.startswith('edgetwin_cloud_messages_in_total{kind="report"}')
    )
    return float(line.split()[-1])


async def test_two_replicas_share_the_work_and_killing_one_loses_nothing(stack: CloudStack) -> None:
    await stack.apply(MODEL + "---" + device_yaml("thermo-1", "node-a"))
    here = await stack.start_cloud()
    metrics_port = free_port()
    with service(
        "cloud",
        "--kubeconfig", str(stack.api_server.kubeconfig),
        "--broker", stack.broker.url,
        "--data-dir", str(stack.data_dir),
        "--admit", "node-a", "node-b",
        "--broker-reload-command", f"kill -HUP {stack.mosquitto.pid}",
        "--metrics-port", str(metrics_port),
    ) as other:  # fmt: skip
        await asyncio.to_thread(other.wait_for, "edgetwin cloud is up")
        async with stack.peer("node-a", resend=0.5) as node:
            sent = []
            for index in range(60):
                sent.append(
                    await node.report(
                        {"default/thermo-1": DeviceReport(twins={"temperature": value(str(index))})}
                    )
                )
                await asyncio.sleep(0.02)
                if index == 30:
                    shared = reports_in(await asyncio.to_thread(scrape, metrics_port))
                    other.kill()
            for seq in sent:
                await node.wait_ack("report", seq)
    assert shared > 0  # the killed replica had its share of the stream
    assert here.metrics.messages_in.labels("report")._value.get() > 0
    await stack.wait("device/thermo-1", "jsonpath={.status.twins[0].reported.value}=59")
