"""Telling the user why a Device is not on its node: an Event, a ``Valid`` condition, a log line.

A Device that cannot be sent down (``checks.Problem``: no node, an unknown DeviceModel, a property
the model lacks, a desired value of the wrong type or out of range) gets, once per problem:

* a Warning Event with the problem's reason and message (``kubectl describe device`` shows it);
* the condition ``Valid`` = ``False`` with the same reason and message in its status, which stays
  when the Event has expired (``kubectl get device -o yaml``); ``True`` again once it is fixed;
* a warning in cloud-sync's log.

The device's node keeps what it had of it, and no other device is touched.
"""

from __future__ import annotations

import logging
from typing import Any

from cloud_sync.inventory import Inventory, Placement
from cloud_sync.recorder import Recorder, now_rfc3339
from cloud_sync.status import StatusWriter

__all__ = ["CONDITION", "Problems"]

log = logging.getLogger(__name__)

CONDITION = "Valid"


def _condition(ok: bool, reason: str, message: str) -> dict[str, Any]:
    return {
        "type": CONDITION,
        "status": "True" if ok else "False",
        "reason": reason,
        "message": message,
        "lastTransitionTime": now_rfc3339(),
    }


class Problems:
    def __init__(self, inventory: Inventory, recorder: Recorder, status: StatusWriter) -> None:
        self.inventory = inventory
        self.recorder = recorder
        self.status = status

    def on_placement(self, device_id: str, before: Placement | None, after: Placement | None) -> None:
        obj = self.inventory.devices.get(device_id)
        if after is None or obj is None:
            return
        problem = after.problem
        if problem is not None and (before is None or before.problem != problem):
            log.warning(
                "Device %s is not sent to its node: %s (%s)", device_id, problem.message, problem.reason
            )
            self.recorder.record(obj, problem.reason, problem.message)
            self.status.set_condition(device_id, _condition(False, problem.reason, problem.message))
        elif problem is None and _invalid_condition(obj):
            log.info("Device %s is valid again", device_id)
            self.status.set_condition(device_id, _condition(True, "Valid", "the device is sent to its node"))


def _invalid_condition(obj: dict[str, Any]) -> bool:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(
        isinstance(c, dict) and c.get("type") == CONDITION and c.get("status") == "False" for c in conditions
    )
