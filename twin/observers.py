"""What changed in a twin or in the node's definitions, told to in-process observers.

The cloud link sends edge-set desired values, reported values and states up when a twin changes;
the DMI server tells KubeEdge mappers when the node's devices change. Both learn it here, from the
twin service, in the order the changes were made.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from twin.engine import UpdateOutcome
from twin.models import Device
from twin.topics import Action
from twin.wire import TwinUpdate

__all__ = ["DefinitionsChange", "DefinitionsObserver", "TwinChange", "TwinObserver", "change_of"]


@dataclass(frozen=True)
class TwinChange:
    """What changed in a twin, for observers: desired values (set at the edge or by the cloud),
    reported values, the device state."""

    desired: frozenset[str] = frozenset()
    reported: frozenset[str] = frozenset()
    state: bool = False
    origin: Literal["edge", "cloud"] = "edge"


TwinObserver = Callable[[str, TwinChange], None]


@dataclass(frozen=True)
class DefinitionsChange:
    """Devices of the node added or changed (their new definitions) and removed (their last ones)."""

    changed: tuple[Device, ...] = ()
    removed: tuple[Device, ...] = ()


DefinitionsObserver = Callable[[DefinitionsChange], None]


def change_of(request: TwinUpdate, outcome: UpdateOutcome, action: Action) -> TwinChange:
    """What an accepted update changed, and whether it was a cloud write or came from the edge."""
    names = {c.name for c in outcome.changes}
    desired = {n for n in names if (w := request.twin.get(n)) is not None and w.expected is not None}
    reported = {n for n in names if (w := request.twin.get(n)) is not None and w.actual is not None}
    # A versioned twin/cloud_updated is a cloud write; everything else came from the edge.
    origin: Literal["edge", "cloud"] = "edge"
    if action is Action.TWIN_CLOUD_UPDATED and any(
        (w := request.twin.get(n)) is not None and w.expected_version is not None for n in desired
    ):
        origin = "cloud"
    return TwinChange(desired=frozenset(desired), reported=frozenset(reported), origin=origin)
