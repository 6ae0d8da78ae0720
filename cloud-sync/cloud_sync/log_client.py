"""A pod's log fetched from its edge node by a short-lived client: ``edgetwin cloud logs`` on a real cluster.

On a real cluster ``kubectl logs`` asks kube-apiserver, which calls the kubelet API on the pod's
node (port 10250 of its address): an edgetwin node serves no kubelet API, and usually sits behind
NAT where the cluster cannot reach it. The node is reachable over the cloud link instead, so this
client does what cloud-sync does for the embedded API server's ``pods/log``: it reads the pod
(its node and uid) from the Kubernetes API, logs in to the cloud broker as cloud-sync does
(``edgetwin-cloud``), names itself as a replica of its own for the answers, and streams the log
(``LogStreams``). It needs what cloud-sync needs: the kubeconfig and the cloud broker's address and
cloud-sync's broker password.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
from collections.abc import AsyncGenerator

from pydantic import BaseModel, ValidationError

from cloud_sync.errors import ApiNotFound
from cloud_sync.kube import KubeApi
from cloud_sync.pod_logs import LogQuery, LogStreams
from cloud_sync.resources import PODS
from edgemqtt import BrokerAddress, Message, MqttClient
from twin.link import DownKind, down_topic
from twin.link_pods import LogChunk, parse_reply_topic, reply_filter

__all__ = ["fetch_pod_logs"]


async def fetch_pod_logs(
    api: KubeApi,
    broker: BrokerAddress,
    namespace: str,
    name: str,
    query: LogQuery,
    *,
    answer_timeout: float = 10.0,
) -> AsyncGenerator[bytes, None]:
    """The log of a container of pod ``namespace/name`` from its node (see ``LogStreams.stream``:
    ``LookupError``, ``TimeoutError``, ``ConnectionError``); ``LookupError`` also for a pod that is
    not there or not bound to a node."""
    try:
        pod = await api.get(PODS.path(namespace, name))
    except ApiNotFound:
        raise LookupError(f'pods "{name}" not found in namespace {namespace}') from None
    spec = pod.get("spec") or {}
    node = spec.get("nodeName")
    if not isinstance(node, str) or not node:
        raise LookupError(f"pod {name} is not bound to a node yet: it has no logs")
    containers = [c.get("name") for c in spec.get("containers") or [] if isinstance(c, dict)]
    if not query.container:
        if len(containers) != 1:
            raise LookupError(
                f"a container name must be specified for pod {name}, choose one of: {containers}"
            )
        query = LogQuery(**{**query.__dict__, "container": str(containers[0])})
    uid = str((pod.get("metadata") or {}).get("uid") or "")
    replica = f"logs-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
    client: MqttClient | None = None

    def send(target: str, kind: DownKind, message: BaseModel) -> None:
        if client is not None:
            client.publish(down_topic(target, kind), message.model_dump_json().encode(), qos=1)

    streams = LogStreams(send, replica, answer_timeout=answer_timeout)

    def received(message: Message) -> None:
        reply = parse_reply_topic(message.topic)
        if reply is None:
            return
        try:
            streams.chunk(reply[0], LogChunk.model_validate_json(message.payload))
        except ValidationError:
            return

    client = MqttClient(broker, client_id=f"edgetwin-cloud-{replica}", on_message=received)
    async with client:
        await client.subscribe(reply_filter(replica), qos=1)
        async with contextlib.aclosing(streams.stream(node, f"{namespace}/{name}", uid, query)) as log:
            async for chunk in log:
                yield chunk
