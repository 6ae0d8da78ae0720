"""Devices down to their nodes: the answer to a hello, and a change message for every change since.

A node says in its ``Hello`` which devices it holds, each with its generation (and the assignment's
revision) and its desired values' version pairs; the ``Sync`` that answers names that hello and
carries only what differs: the devices of the node it lacks or holds in an older revision or with
older desired pairs, and the ids of those it holds that are no longer its own. A node that is up to
date gets an empty sync: nothing is listed again.

While the link is up, every placement change becomes a ``DeviceChange``: an ``upsert`` when a
device of the node appears or changes (its Device, its DeviceModel, its settled desired values),
a ``delete`` when it is deleted or leaves the node (and an ``upsert`` to the node it moves to).
Devices that cannot be sent (a ``Problem``) or wait for their versions to be stamped are neither
sent nor taken away: the node keeps what it had. Every replica sends these; versions make the
repeats harmless at the node.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from pydantic import BaseModel

from cloud_sync.inventory import Inventory, Placement
from twin.link import DeviceAssignment, DeviceChange, DownKind, HeldDevice, Hello, Sync
from twin.link_pods import PodAssignment

__all__ = ["Mirror", "Sender"]

log = logging.getLogger(__name__)

#: Publishes a message to a node's ``down/{kind}``.
Sender = Callable[[str, DownKind, BaseModel], None]
#: The pods' part of a sync (``cloud_sync.pod_mirror``): the pods to send and the keys to remove.
PodPart = Callable[[str, Hello], tuple[list[PodAssignment], list[str]]]


def _differs(held: HeldDevice | None, assignment: DeviceAssignment) -> bool:
    """Whether a node holding ``held`` must be sent ``assignment``."""
    if held is None:
        return True
    if held.revision:
        if held.revision != assignment.revision:
            return True
    elif held.generation != assignment.generation:
        return True
    for name, desired in assignment.desired.items():
        pair = held.desired.get(name)
        # A pair the node holds that is newer than ours is an edge write on its way up: no resend.
        if pair is None or (desired.cloud, desired.edge) > tuple(pair):
            return True
    return False


class Mirror:
    def __init__(self, inventory: Inventory, send: Sender, pod_part: PodPart | None = None) -> None:
        self.inventory = inventory
        self.send = send
        self.pod_part = pod_part
        #: Changes are sent once the link is up; before, nodes learn everything from their hellos.
        self.live = False

    def answer(self, node: str, hello: Hello) -> Sync:
        """Send the ``Sync`` that answers ``hello`` (and return it)."""
        owned = self.inventory.devices_of(node)
        owned_ids = {placement.device_id for placement in owned}
        sync = Sync(
            hello=hello.id,
            devices=[
                p.assignment
                for p in owned
                if p.assignment is not None and _differs(hello.devices.get(p.device_id), p.assignment)
            ],
            removed=sorted(device_id for device_id in hello.devices if device_id not in owned_ids),
        )
        if self.pod_part is not None:
            pods, removed_pods = self.pod_part(node, hello)
            sync = sync.model_copy(update={"pods": pods, "removed_pods": removed_pods})
        self.send(node, "sync", sync)
        log.info(
            "hello answered: node=%s hello=%s held=%d sent=%d removed=%d",
            node,
            hello.id,
            len(hello.devices),
            len(sync.devices),
            len(sync.removed),
        )
        return sync

    def on_placement(self, device_id: str, before: Placement | None, after: Placement | None) -> None:
        if not self.live:
            return
        if before is not None and before.node and (after is None or after.node != before.node):
            self.send(before.node, "device", DeviceChange(op="delete", id=device_id))
        if (
            after is not None
            and after.assignment is not None
            and after.node
            and (before is None or before.node != after.node or before.signature != after.signature)
        ):
            self.send(after.node, "device", DeviceChange(op="upsert", assignment=after.assignment))

    def resend(self, nodes: Iterable[str]) -> int:
        """Send every sendable device of ``nodes`` again (at start: what changed while no replica ran).

        Nodes that stayed connected to the broker say no new hello, so cloud-sync cannot know what
        they missed; the upserts are idempotent at the node. Returns how many were sent.
        """
        sent = 0
        for node in nodes:
            for placement in self.inventory.devices_of(node):
                if placement.assignment is not None:
                    self.send(node, "device", DeviceChange(op="upsert", assignment=placement.assignment))
                    sent += 1
        return sent
