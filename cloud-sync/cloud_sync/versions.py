"""The version pairs of desired values, kept in a Device's annotation (docs/cloud-link.md, "Versions").

``twin.edgetwin.io/desired-versions`` holds, per property, the desired value last settled in the
cluster and its ``(cloud, edge)`` pair: ``{"target": {"value": "22", "cloud": 3, "edge": 1}}``.
Pure functions, no I/O:

* ``cloud_writes``: the spec's desired values that differ from the annotation are writes made in the
  cluster (kubectl): each gets ``cloud + 1``, keeping the ``edge`` counter last known. A property
  without an entry starts its ``cloud`` counter at the time of the write in milliseconds rather than
  at 1: a Device deleted and created again has lost its annotation, while its node may keep the old
  twin's versions (``twin.registry`` restores a device's twin when it comes back), and the new
  value must still outrank them.
* ``settled``: the desired values with their pairs, as sent to the node: only values the
  annotation has settled (a value the cluster changed but cloud-sync has not stamped yet waits).
* ``judge_edge``: the rule for a desired value set at the edge (``up/desired``).
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from twin.link import DesiredValue

__all__ = [
    "ANNOTATION",
    "EdgeVerdict",
    "Stamp",
    "cloud_writes",
    "format_stamps",
    "judge_edge",
    "read_stamps",
    "settled",
    "spec_desired",
]

log = logging.getLogger(__name__)

ANNOTATION = "twin.edgetwin.io/desired-versions"


@dataclass(frozen=True, slots=True)
class Stamp:
    """A desired value as settled in the cluster, with its version pair."""

    value: str
    cloud: int
    edge: int

    @property
    def pair(self) -> tuple[int, int]:
        return (self.cloud, self.edge)


def read_stamps(obj: Mapping[str, Any]) -> dict[str, Stamp]:
    """The annotation of a Device; a malformed one (edited by hand) counts as empty, with a warning."""
    metadata = obj.get("metadata") or {}
    text = (metadata.get("annotations") or {}).get(ANNOTATION)
    if not text:
        return {}
    try:
        raw = orjson.loads(text)
        return {
            str(name): Stamp(str(entry["value"]), int(entry["cloud"]), int(entry["edge"]))
            for name, entry in raw.items()
        }
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError):
        log.warning(
            "Device %s/%s: annotation %s is not readable (%.80s); its desired values start over",
            metadata.get("namespace"),
            metadata.get("name"),
            ANNOTATION,
            text,
        )
        return {}


def format_stamps(stamps: Mapping[str, Stamp]) -> str:
    return orjson.dumps(
        {name: {"value": s.value, "cloud": s.cloud, "edge": s.edge} for name, s in sorted(stamps.items())}
    ).decode()


def spec_desired(obj: Mapping[str, Any]) -> dict[str, str]:
    """Each property's non-empty ``spec.properties[].desired.value``."""
    found: dict[str, str] = {}
    for prop in (obj.get("spec") or {}).get("properties") or []:
        if not isinstance(prop, dict):
            continue
        desired = prop.get("desired")
        value = desired.get("value") if isinstance(desired, dict) else None
        if isinstance(value, bool):
            value = "true" if value else "false"
        if isinstance(value, int | float | str) and str(value) and isinstance(prop.get("name"), str):
            found[prop["name"]] = str(value)
    return found


def cloud_writes(obj: Mapping[str, Any], *, now_ms: int | None = None) -> dict[str, Stamp]:
    """The annotation entries that the spec's new desired values need (empty: all settled)."""
    stamps = read_stamps(obj)
    now = int(time.time() * 1000) if now_ms is None else now_ms
    writes: dict[str, Stamp] = {}
    for name, value in spec_desired(obj).items():
        held = stamps.get(name)
        if held is None:
            writes[name] = Stamp(value, max(1, now), 0)
        elif held.value != value:
            writes[name] = Stamp(value, held.cloud + 1, held.edge)
    return writes


def settled(obj: Mapping[str, Any]) -> dict[str, DesiredValue]:
    """The desired values whose pairs the annotation holds, as the node receives them."""
    stamps = read_stamps(obj)
    return {
        name: DesiredValue(value=value, cloud=stamps[name].cloud, edge=stamps[name].edge)
        for name, value in spec_desired(obj).items()
        if name in stamps and stamps[name].value == value
    }


class EdgeVerdict(enum.Enum):
    ACCEPT = "accept"  # becomes the Device's desired value
    ALREADY = "already"  # this very write is in the cluster already (a repeated message)
    SUPERSEDED = "superseded"  # the cluster changed the value meanwhile: the cluster wins
    STALE = "stale"  # older than what the cluster holds from the edge


def judge_edge(obj: Mapping[str, Any], name: str, incoming: DesiredValue) -> EdgeVerdict:
    """docs/cloud-link.md: accepted when its ``cloud`` counter is the annotation's and its ``edge`` newer."""
    held = read_stamps(obj).get(name)
    spec_value = spec_desired(obj).get(name, "")
    if spec_value and (held is None or held.value != spec_value):
        return EdgeVerdict.SUPERSEDED  # a change made in the cluster, not stamped yet
    held_pair = held.pair if held is not None else (0, 0)
    if (incoming.cloud, incoming.edge) == held_pair and incoming.value == (held.value if held else ""):
        return EdgeVerdict.ALREADY
    if incoming.cloud == held_pair[0] and incoming.edge > held_pair[1]:
        return EdgeVerdict.ACCEPT
    if incoming.cloud < held_pair[0]:
        return EdgeVerdict.SUPERSEDED
    return EdgeVerdict.STALE
