"""Reading the twin's membership answers: which devices this node has, with what a mapper needs.

``$hw/events/node/{node}/membership/get/result`` lists the node's devices; ``…/membership/updated``
adds and removes some. KubeEdge's entries carry only ``id``/``name``/``state``; edgetwin adds the
Device and DeviceModel under the key ``edgetwin``. Bodies are parsed tolerantly: a broken entry is
skipped with a warning, never stopping the mapper.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pydantic import ValidationError

from twin.errors import InvalidPayload
from twin.models import Device, DeviceModel
from twin.topics import full_device_id
from twin.wire import MAX_MEMBERSHIP_PAYLOAD, MembershipReply, decode, encode_request
from twin.wire import Member as WireMember

__all__ = ["Member", "MembershipChange", "membership_request", "parse_membership"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Member:
    id: str
    device: Device
    model: DeviceModel | None

    def serves_like(self, other: Member) -> bool:
        """Whether a worker for ``other`` would talk to the device exactly as one for this member.

        Desired values reach a worker as deltas, and metadata (versions, annotations) is not the
        device's: a change of either must not reconnect the device.
        """
        return _binding(self) == _binding(other)


def _binding(member: Member) -> tuple[object, object]:
    spec = member.device.spec.model_dump(mode="json")
    for prop in spec.get("properties") or []:
        prop.pop("desired", None)
    model = member.model.spec.model_dump(mode="json") if member.model is not None else None
    return spec, model


@dataclass(frozen=True)
class MembershipChange:
    """``full`` lists every device of the node (a get result); otherwise a delta."""

    added: tuple[Member, ...]
    removed: tuple[str, ...]
    full: bool


def _id(entry: WireMember) -> str:
    if entry.id:
        return full_device_id(entry.id)
    return full_device_id(entry.name) if entry.name else ""


def _member(entry: WireMember) -> Member | None:
    extra = entry.edgetwin or {}
    if "device" not in extra:
        log.debug("membership entry %s carries no device spec; not a device edgetwin runs", _id(entry))
        return None
    try:
        device = Device.model_validate(extra["device"])
        model = DeviceModel.model_validate(extra["model"]) if extra.get("model") else None
    except ValidationError as exc:
        log.warning("membership entry %s has an invalid device or model, skipped: %s", _id(entry), exc)
        return None
    return Member(device.id, device, model)


def parse_membership(payload: bytes) -> MembershipChange:
    """Parse a get result or an updated event; ``InvalidPayload`` for a body that is neither."""
    # A node's whole list is one message, larger than any request the twin takes in.
    body = decode(MembershipReply, payload, max_size=MAX_MEMBERSHIP_PAYLOAD)
    if body.code is not None and body.code >= 400:
        raise InvalidPayload(f"membership request failed with {body.code}: {body.reason}")
    if body.devices is not None:
        members = tuple(m for m in map(_member, body.devices) if m is not None)
        return MembershipChange(members, (), full=True)
    added = tuple(m for m in map(_member, body.added_devices or []) if m is not None)
    removed = tuple(i for i in map(_id, body.removed_devices or []) if i)
    return MembershipChange(added, removed, full=False)


def membership_request(event_id: str) -> bytes:
    return encode_request(event_id)
