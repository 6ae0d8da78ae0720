"""The cloud link's pod messages: pods down to the node that runs them, their status and logs back.

Part of the link's wire schema (``twin.link``, docs/cloud-link.md), kept in a module of its own.
Pods travel as the Kubernetes API holds them (plain JSON objects: the node validates them against
its own pod model, so a pod it cannot read is rejected *with a reason in its status*, never dropped
unseen). Everything here is idempotent under at-least-once delivery:

* a pod comes with a ``revision`` (opaque to the node, kept with the pod and named in hellos) and
  its ``uid``; a hello lists the pods a node holds, and the sync that answers it carries only the
  pods that differ and the keys of those to remove;
* a pod status carries a ``version`` that grows with every status of that pod on the node, so a
  late resend is recognisable; ``status: null`` says the pod is gone from the node;
* a log request names an id and the replica to answer (``reply/{replica}``: log chunks must reach
  the replica that holds the client's request, not any member of the shared subscription).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "REPLY_PATTERN",
    "HeldPod",
    "LogChunk",
    "LogRequest",
    "PodAssignment",
    "PodChange",
    "PodReport",
    "PodStatusReport",
    "parse_reply_topic",
    "reply_filter",
    "reply_topic",
]

#: What a replica name may be: it becomes one level of an MQTT topic.
REPLY_PATTERN = r"^[A-Za-z0-9._-]{1,128}$"
_REPLY = re.compile(REPLY_PATTERN)
_PREFIX = "edgetwin/v1/nodes/"


def reply_topic(node: str, replica: str) -> str:
    """Where node ``node`` answers a request of cloud-sync replica ``replica`` (inside its own subtree)."""
    return f"{_PREFIX}{node}/reply/{replica}"


def reply_filter(replica: str) -> str:
    """What replica ``replica`` subscribes to (not shared: answers are for it alone)."""
    return f"{_PREFIX}+/reply/{replica}"


def parse_reply_topic(topic: str) -> tuple[str, str] | None:
    """``(node, replica)`` of a reply topic; ``None`` for any other topic."""
    if not topic.startswith(_PREFIX):
        return None
    parts = topic[len(_PREFIX) :].split("/")
    if len(parts) != 3 or not parts[0] or parts[1] != "reply" or not _REPLY.match(parts[2]):
        return None
    return parts[0], parts[2]


class _Message(BaseModel):
    # As ``twin.link``: a newer end may add fields; ignore them, never fail.
    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)


# -- pods down ---------------------------------------------------------------------------------------


class HeldPod(_Message):
    """A pod a node holds, as its hello names it."""

    uid: str = ""
    #: The ``revision`` of the assignment the node holds the pod from.
    revision: str = ""


class PodAssignment(_Message):
    """A pod bound to the node, with the ConfigMaps and Secrets it names (those that exist)."""

    #: The v1 Pod without ``status`` and ``metadata.managedFields``.
    pod: dict[str, Any]
    #: By name, in the pod's namespace: the objects as the API holds them.
    config_maps: dict[str, dict[str, Any]] = Field(default_factory=dict)
    secrets: dict[str, dict[str, Any]] = Field(default_factory=dict)
    #: Opaque to the node: changes when the pod or one of its ConfigMaps or Secrets does.
    revision: str = ""

    @property
    def key(self) -> str:
        """``namespace/name`` (empty when the pod has no name)."""
        metadata = self.pod.get("metadata")
        if not isinstance(metadata, dict) or not metadata.get("name"):
            return ""
        return f"{metadata.get('namespace') or 'default'}/{metadata['name']}"

    @property
    def uid(self) -> str:
        metadata = self.pod.get("metadata")
        return str(metadata.get("uid") or "") if isinstance(metadata, dict) else ""


class PodChange(_Message):
    """``down/pod``: a pod bound to the node, changed, or to be stopped and forgotten."""

    op: Literal["upsert", "delete"]
    assignment: PodAssignment | None = None
    #: For ``delete``: the pod's ``namespace/name`` and uid (another pod of the same name is untouched).
    key: str = ""
    uid: str = ""
    #: For ``delete``: seconds the containers get to stop (``None``: the pod's own grace period).
    grace: int | None = Field(default=None, ge=0)


# -- status up ---------------------------------------------------------------------------------------


class PodReport(_Message):
    uid: str
    #: The pod's ``status`` as the kubelet writes it; ``None``: the pod is gone from the node.
    status: dict[str, Any] | None
    #: Grows with every status of this pod on this node, across restarts of the node agent.
    version: int = Field(ge=0)


class PodStatusReport(_Message):
    """``up/podstatus``: the latest status of some pods, acknowledged by a ``down/ack``."""

    seq: int
    pods: dict[str, PodReport]


# -- logs -----------------------------------------------------------------------------------------------


class LogRequest(_Message):
    """``down/logs``: open a stream of a container's log, keep a followed one open, or close it."""

    id: str = Field(min_length=1, max_length=128)
    op: Literal["open", "renew", "close"] = "open"
    #: The replica that asks; the node answers on ``reply/{reply_to}``.
    reply_to: str = Field(pattern=REPLY_PATTERN)
    pod: str = ""
    uid: str = ""
    container: str = ""
    previous: bool = False
    follow: bool = False
    tail: int | None = Field(default=None, ge=0)
    timestamps: bool = False
    limit_bytes: int | None = Field(default=None, ge=1)
    since_seconds: int | None = Field(default=None, ge=1)


class LogChunk(_Message):
    """``reply/{replica}``: part of a log stream, in order (``seq`` from 0); ``end`` closes it,
    with ``error`` when the log could not be read (no such container, the pod is not here...)."""

    id: str
    seq: int = Field(ge=0)
    #: The log's bytes, base64 (a log need not be UTF-8).
    data: str = ""
    end: bool = False
    error: str | None = None

    @classmethod
    def of(
        cls, id: str, seq: int, content: bytes = b"", *, end: bool = False, error: str | None = None
    ) -> Self:
        return cls(id=id, seq=seq, data=base64.b64encode(content).decode(), end=end, error=error)

    @property
    def content(self) -> bytes:
        """The bytes ``data`` carries (``ValueError`` if it is not base64)."""
        try:
            return base64.b64decode(self.data, validate=True)
        except binascii.Error as exc:
            raise ValueError(f"log chunk {self.id} {self.seq}: data is not base64: {exc}") from exc
