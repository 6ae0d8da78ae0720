"""KubeEdge's edge MQTT topics: building them, and reading a device id and action out of one.

A device id is ``namespace/name`` (two topic levels, KubeEdge >= 1.16). For devices in the
``default`` namespace the bare ``name`` (KubeEdge <= 1.15, and the published example mappers and
apps) is served too; a request is answered on the form it came in.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "DEVICE_PREFIX",
    "NODE_PREFIX",
    "Action",
    "DeviceTopic",
    "device_topic",
    "event_topics",
    "full_device_id",
    "membership_topic",
    "parse_device_topic",
    "request_filters",
    "split_device_id",
]

DEVICE_PREFIX = "$hw/events/device/"
NODE_PREFIX = "$hw/events/node/"


class Action(enum.StrEnum):
    """What comes after the device id on a topic."""

    TWIN_UPDATE = "twin/update"
    #: What KubeEdge's cloud sends down; published example apps use it to report values.
    TWIN_CLOUD_UPDATED = "twin/cloud_updated"
    TWIN_UPDATE_RESULT = "twin/update/result"
    TWIN_UPDATE_DOCUMENT = "twin/update/document"
    TWIN_UPDATE_DELTA = "twin/update/delta"
    TWIN_GET = "twin/get"
    TWIN_GET_RESULT = "twin/get/result"
    STATE_UPDATE = "state/update"
    STATE_UPDATE_RESULT = "state/update/result"

    @property
    def result(self) -> Action:
        if self is Action.TWIN_CLOUD_UPDATED:
            return Action.TWIN_UPDATE_RESULT  # as KubeEdge answers it
        return Action(f"{self.value}/result")


_REQUESTS = (Action.TWIN_UPDATE, Action.TWIN_CLOUD_UPDATED, Action.TWIN_GET, Action.STATE_UPDATE)


@dataclass(frozen=True, slots=True)
class DeviceTopic:
    """A request topic, read: which device (``namespace/name``), which action, which id form."""

    device_id: str
    action: Action
    legacy: bool

    def reply(self, action: Action) -> str:
        """The topic for ``action`` on the same id form the request used."""
        return device_topic(self.device_id, action, legacy=self.legacy)


def full_device_id(device_id: str) -> str:
    """``namespace/name`` from either form a user or a KubeEdge client writes (bare ``name`` = default)."""
    return device_id if "/" in device_id else f"default/{device_id}"


def split_device_id(device_id: str) -> tuple[str, str]:
    namespace, _, name = device_id.rpartition("/")
    return (namespace or "default"), name


def device_topic(device_id: str, action: Action, *, legacy: bool = False) -> str:
    if legacy:
        return f"{DEVICE_PREFIX}{split_device_id(device_id)[1]}/{action.value}"
    return f"{DEVICE_PREFIX}{device_id}/{action.value}"


def event_topics(device_id: str, action: Action, *, legacy_topics: bool = True) -> list[str]:
    """Where an event (document, delta) for a device goes: both id forms for ``default`` devices."""
    topics = [device_topic(device_id, action)]
    if legacy_topics and split_device_id(device_id)[0] == "default":
        topics.append(device_topic(device_id, action, legacy=True))
    return topics


def membership_topic(node: str, suffix: str) -> str:
    """``suffix`` is ``get``, ``get/result`` or ``updated``."""
    return f"{NODE_PREFIX}{node}/membership/{suffix}"


def request_filters() -> list[str]:
    """Subscriptions for the requests the twin answers, in both id forms, never its own replies."""
    filters = []
    for action in _REQUESTS:
        filters.append(f"{DEVICE_PREFIX}+/{action.value}")
        filters.append(f"{DEVICE_PREFIX}+/+/{action.value}")
    return filters


def parse_device_topic(topic: str) -> DeviceTopic | None:
    """Read a request topic; ``None`` if it is not a twin request."""
    if not topic.startswith(DEVICE_PREFIX):
        return None
    levels = topic[len(DEVICE_PREFIX) :].split("/")
    if len(levels) < 3:
        return None
    action_text = "/".join(levels[-2:])
    try:
        action = Action(action_text)
    except ValueError:
        return None
    if action not in _REQUESTS:
        return None
    id_levels = levels[:-2]
    if len(id_levels) == 1 and id_levels[0]:
        return DeviceTopic(f"default/{id_levels[0]}", action, legacy=True)
    if len(id_levels) == 2 and all(id_levels):
        return DeviceTopic(f"{id_levels[0]}/{id_levels[1]}", action, legacy=False)
    return None
