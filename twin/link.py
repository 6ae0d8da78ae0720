"""The cloud link's wire schema: what a node agent and cloud-sync say to each other (DESIGN.md §6).

Both ends import this module (and nothing of each other). The link is MQTT on a cloud broker, QoS
1, one topic subtree per node, ``edgetwin/v1/nodes/{node}/``, which the broker's ACL keeps each
node inside:

up (node → cloud)
    ``up/hello``      on every (re)connect: the devices the node holds, each with the Device's
                      ``metadata.generation`` and the version pair of every desired value
    ``up/report``     reported values, observed desired values and device state, per device;
                      the node sends a device at most once per its report cycle
    ``up/desired``    desired values set at the edge (an app on the local broker), with versions
    ``up/heartbeat``  node status every few seconds; the node's MQTT will says ``online: false``
    ``up/podstatus``  the latest status of the node's pods (``twin.link_pods``)

down (cloud → node)
    ``down/sync``     the answer to a hello: only the devices that changed, and the ids to drop
    ``down/device``   a device assigned, changed or removed since
    ``down/ack``      a ``report``, ``desired`` or ``podstatus`` message of this sequence number is
                      in the cluster
    ``down/pod``      a pod bound to the node, changed or deleted (``twin.link_pods``)
    ``down/logs``     a request for a container's log, answered on ``reply/{replica}``

Delivery is at least once (QoS 1, persistent sessions, and the node sending again what is not
acknowledged), and every message is idempotent: reported values carry their timestamps and desired
values their ``(cloud, edge)`` versions (``DeviceTwin.apply_cloud_desired``), so a repeated or late
message never puts an older value over a newer one.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from twin.link_pods import HeldPod, PodAssignment
from twin.models import Device, DeviceModel

__all__ = [
    "LINK_PREFIX",
    "Ack",
    "Address",
    "DesiredValue",
    "DeviceAssignment",
    "DeviceChange",
    "DeviceReport",
    "Direction",
    "EdgeDesired",
    "Heartbeat",
    "HeldDevice",
    "Hello",
    "LinkTopic",
    "Listening",
    "NodeInfo",
    "Report",
    "ReportedValue",
    "Sync",
    "down_topic",
    "node_password",
    "parse_link_topic",
    "read_sync",
    "up_topic",
]

LINK_PREFIX = "edgetwin/v1/nodes/"


def node_password(token: str, node: str) -> str:
    """The cloud broker password of ``node``, derived from the cluster's join token.

    A node that knows the token proves it with this password (user name = node name) and never
    sends the token itself; cloud-sync, which knows the token, writes the same password's hash into
    the broker's password file for every node it admits.
    """
    return hmac.new(token.encode(), f"edgetwin-node:{node}".encode(), hashlib.sha256).hexdigest()


class Direction(enum.StrEnum):
    UP = "up"
    DOWN = "down"


UpKind = Literal["hello", "report", "desired", "heartbeat", "podstatus"]
DownKind = Literal["sync", "device", "ack", "pod", "logs", "listening"]


def up_topic(node: str, kind: UpKind) -> str:
    return f"{LINK_PREFIX}{node}/up/{kind}"


def down_topic(node: str, kind: DownKind) -> str:
    return f"{LINK_PREFIX}{node}/down/{kind}"


class LinkTopic(BaseModel):
    model_config = ConfigDict(frozen=True)
    node: str
    direction: Direction
    kind: str


def parse_link_topic(topic: str) -> LinkTopic | None:
    """``edgetwin/v1/nodes/{node}/{up|down}/{kind}`` read; ``None`` for any other topic."""
    if not topic.startswith(LINK_PREFIX):
        return None
    parts = topic[len(LINK_PREFIX) :].split("/")
    if len(parts) != 3 or not parts[0] or parts[1] not in ("up", "down") or not parts[2]:
        return None
    return LinkTopic(node=parts[0], direction=Direction(parts[1]), kind=parts[2])


class _Message(BaseModel):
    # Ours on both ends, but a newer node or cloud-sync may add fields: ignore them, never fail.
    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)


# -- versions and values ---------------------------------------------------------------------------


class DesiredValue(_Message):
    """A desired value with the version pair it was written at (``DeviceTwin.apply_cloud_desired``)."""

    value: str
    cloud: int = Field(ge=0)
    edge: int = Field(ge=0)


class ReportedValue(_Message):
    value: str
    #: Milliseconds since the epoch, when the node's twin took the value in.
    timestamp: int = Field(ge=0)


# -- up -----------------------------------------------------------------------------------------------


class HeldDevice(_Message):
    generation: int = 0
    #: The ``revision`` of the assignment the node holds the device from (empty if it has none).
    revision: str = ""
    #: Property -> ``[cloud, edge]`` of its desired value.
    desired: dict[str, tuple[int, int]] = Field(default_factory=dict)


class Hello(_Message):
    node: str
    #: A fresh id for every hello; the ``Sync`` that answers it names it, and a node applies only
    #: the answer to its latest hello.
    id: str
    sent_at: int
    devices: dict[str, HeldDevice] = Field(default_factory=dict)
    #: The pods the node holds, by ``namespace/name``; ``None``: the node runs no pods.
    pods: dict[str, HeldPod] | None = None


class DeviceReport(_Message):
    twins: dict[str, ReportedValue] = Field(default_factory=dict)
    #: The desired value the node holds for each property (``status.twins[].observedDesired``).
    observed_desired: dict[str, ReportedValue] = Field(default_factory=dict)
    state: str | None = None
    last_online: str | None = None


class Report(_Message):
    seq: int
    devices: dict[str, DeviceReport]


class EdgeDesired(_Message):
    seq: int
    devices: dict[str, dict[str, DesiredValue]]


class Address(_Message):
    type: str
    address: str


class NodeInfo(_Message):
    machineID: str = ""
    bootID: str = ""
    kernelVersion: str = ""
    osImage: str = ""
    operatingSystem: str = "linux"
    architecture: str = ""
    kubeletVersion: str = ""
    containerRuntimeVersion: str = ""


class Heartbeat(_Message):
    sent_at: int
    online: bool = True
    node_info: NodeInfo = Field(default_factory=NodeInfo)
    addresses: list[Address] = Field(default_factory=list)
    capacity: dict[str, str] = Field(default_factory=dict)


# -- down ---------------------------------------------------------------------------------------------


class Listening(_Message):
    """A cloud-sync replica has just begun listening to the up stream (sent to every admitted node).

    A node's hello published while no replica was subscribed is lost, not queued: a node that has
    not had its sync yet says hello again at once instead of after ``resend`` seconds.
    """

    replica: str = ""
    sent_at: int = 0


class DeviceAssignment(_Message):
    """A device as the node runs it: the Device, its DeviceModel and its desired values' versions."""

    device: Device
    model: DeviceModel
    generation: int = 0
    desired: dict[str, DesiredValue] = Field(default_factory=dict)
    #: Opaque to the node, which keeps it with the device and names it in its hellos: it changes
    #: when the Device or its DeviceModel does (a DeviceModel edited while the node was away, a
    #: Device deleted and created again with the same generation), which ``generation`` alone misses.
    revision: str = ""


class Sync(_Message):
    #: The ``id`` of the hello this answers.
    hello: str
    devices: list[DeviceAssignment] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)
    #: For a node that runs pods: the pods it lacks or holds in another revision or uid, and the
    #: keys of those it holds that are no longer bound to it.
    pods: list[PodAssignment] = Field(default_factory=list)
    removed_pods: list[str] = Field(default_factory=list)


class DeviceChange(_Message):
    op: Literal["upsert", "delete"]
    assignment: DeviceAssignment | None = None
    #: For ``delete``: the ``namespace/name`` of the device.
    id: str = ""


class Ack(_Message):
    kind: Literal["report", "desired", "podstatus"]
    seq: int


def read_sync(payload: bytes) -> tuple[Sync, list[bytes]]:
    """A ``down/sync`` read device by device: the message without its devices, and each device's
    ``DeviceAssignment`` as JSON, every one checked.

    A sync of a thousand devices is ~1.8 MB; read whole, it is ~17 MB of objects alive at once,
    and whatever the node keeps while they are alive (twins, schemas) pins the allocator's arenas
    after they are gone. Here each assignment is checked and let go; the caller reads them again one
    at a time. A malformed sync raises the ``ValidationError`` that ``Sync.model_validate_json``
    raises for it, all or nothing, as before.
    """
    try:
        document = orjson.loads(payload)
    except orjson.JSONDecodeError:
        document = None  # pydantic's reading decides (and names the error)
    items = document.pop("devices", None) if isinstance(document, dict) else None
    if not isinstance(items, list):
        sync = Sync.model_validate_json(payload)
        return sync, [assignment.model_dump_json().encode() for assignment in sync.devices]
    devices = [orjson.dumps(item) for item in items]
    del items
    try:
        envelope = Sync.model_validate_json(orjson.dumps(document))
        for device in devices:
            DeviceAssignment.model_validate_json(device)
    except ValidationError:
        Sync.model_validate_json(payload)  # the whole message's errors, as its sender would read them
        raise
    return envelope, devices
