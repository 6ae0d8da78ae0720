"""Device changes from the cloud taken in runs: changes that arrive together are applied together.

Applying devices costs the node a rewrite of its definitions (every Device it holds, on disk)
whatever their number, so a thousand ``down/device`` upserts applied one by one cost a thousand
rewrites: minutes for a node of a thousand devices, which is what a cluster sends when a thousand
Devices are applied for a node at once, or their DeviceModel changes. ``steps`` turns a run of
changes, in arrival order, into as few applications as keep their meaning:

* upserts of one device are merged into one assignment: the definition of the highest
  ``generation`` (the later of equals), and for each property the desired value with the highest
  version pair (so a late repeat from another replica, older, loses as it would one by one);
* a delete ends the step before it (an upsert, then a delete, then an upsert of the same device
  keep that order).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from twin.link import DesiredValue, DeviceAssignment, DeviceChange

__all__ = ["Step", "steps"]


@dataclass
class Step:
    """Devices to apply (upserted), then ids to take away, in this order."""

    upserts: dict[str, DeviceAssignment] = field(default_factory=dict)
    deletes: list[str] = field(default_factory=list)


def steps(changes: list[DeviceChange]) -> list[Step]:
    """The changes (each a valid upsert with its assignment, or a delete with its id) as steps."""
    result = [Step()]
    for change in changes:
        current = result[-1]
        if change.op == "delete":
            current.deletes.append(change.id)
            result.append(Step())
        elif change.assignment is not None:
            device_id = change.assignment.device.id
            held = current.upserts.get(device_id)
            current.upserts[device_id] = (
                change.assignment if held is None else _merged(held, change.assignment)
            )
    return [step for step in result if step.upserts or step.deletes]


def _merged(first: DeviceAssignment, second: DeviceAssignment) -> DeviceAssignment:
    newer = second if second.generation >= first.generation else first
    desired: dict[str, DesiredValue] = dict(first.desired)
    for name, value in second.desired.items():
        held = desired.get(name)
        if held is None or (value.cloud, value.edge) >= (held.cloud, held.edge):
            desired[name] = value
    return newer.model_copy(update={"desired": desired})
