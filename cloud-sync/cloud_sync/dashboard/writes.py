"""A desired value set from the dashboard: checked against the DeviceModel, then a JSON patch of the Device.

The page's "Set" is a cloud write, the same one ``kubectl patch device NAME --type json -p
'[{"op": "replace", "path": "/spec/properties/N/desired/value", "value": "22"}]'`` makes: it
changes ``spec.properties[N].desired.value`` through the Kubernetes API, and cloud-sync's normal
path (its devices watch, the stamping of the value's versions, the mirror) carries it to the node.
Nothing here talks to a node.

Before writing, the value goes through the twin's own rules (``twin.values.PropertySchema``:
writable, typed, finite, within ``minimum``/``maximum``, KubeEdge's characters), so a value the
node would refuse is refused at once with the model's reason and the Device is left as it was.
The patch tests that property ``N`` is still the one named (the list may have been edited since it
was read) and is made again from a fresh read if that test fails.
"""

from __future__ import annotations

import logging
from typing import Any

from cloud_sync.checks import ModelCheck
from cloud_sync.dashboard.views import model_key
from cloud_sync.errors import ApiNotFound, ApiRefused
from cloud_sync.inventory import Inventory
from cloud_sync.kube import JSON_PATCH, KubeApi, Obj
from cloud_sync.metrics import Metrics
from cloud_sync.resources import DEVICES
from twin.errors import PermanentError, UnknownDevice, UnknownProperty
from twin.values import PropertySchema

__all__ = ["DesiredWriter", "DeviceUnusable", "desired_patch"]

log = logging.getLogger(__name__)

_ATTEMPTS = 3


class DeviceUnusable(PermanentError):
    """The Device's DeviceModel is missing or invalid: no value can be checked against it."""

    code = 409


def desired_patch(obj: Obj, models: dict[str, ModelCheck], prop: str, value: str) -> list[dict[str, Any]]:
    """The JSON patch that sets ``prop``'s desired value, once the model accepts the value.

    Raises ``DeviceUnusable`` (no usable DeviceModel), ``UnknownProperty`` (not a property of the
    Device, or of its model) or an ``InvalidValue`` (the model's reason).
    """
    key = model_key(obj)
    checked = models.get(key) if key is not None else None
    if checked is None:
        raise DeviceUnusable(f"there is no DeviceModel {key} to check the value against")
    if checked.model is None:
        raise DeviceUnusable(checked.problem)
    properties = (obj.get("spec") or {}).get("properties")
    index = next(
        (
            i
            for i, p in enumerate(properties if isinstance(properties, list) else [])
            if isinstance(p, dict) and p.get("name") == prop
        ),
        None,
    )
    model_prop = checked.model.property(prop)
    if index is None or model_prop is None:
        where = "the Device" if index is None else f"its DeviceModel {checked.key}"
        raise UnknownProperty(f"{where} has no property {prop!r}")
    PropertySchema.from_model(model_prop, model=checked.model).check_desired(value)
    assert isinstance(properties, list)
    at = f"/spec/properties/{index}"
    desired = properties[index].get("desired")
    change: dict[str, Any]
    if isinstance(desired, dict) and "value" in desired:
        change = {"op": "replace", "path": f"{at}/desired/value", "value": value}
    elif isinstance(desired, dict):
        change = {"op": "add", "path": f"{at}/desired/value", "value": value}
    else:
        change = {"op": "add", "path": f"{at}/desired", "value": {"value": value}}
    return [{"op": "test", "path": f"{at}/name", "value": prop}, change]


class DesiredWriter:
    def __init__(self, api: KubeApi, inventory: Inventory, metrics: Metrics) -> None:
        self.api = api
        self.inventory = inventory
        self.metrics = metrics

    async def set(self, namespace: str, name: str, prop: str, value: str) -> None:
        """Check ``value`` and patch it into the Device; an ``EdgetwinError`` says why not."""
        path = DEVICES.path(namespace, name)
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                obj = await self.api.get(path)
                patch = desired_patch(obj, self.inventory.models, prop, value)
                await self.api.call("PATCH", path, body=patch, content_type=JSON_PATCH)
            except ApiNotFound as exc:
                raise UnknownDevice(f"there is no Device {namespace}/{name}") from exc
            except ApiRefused as exc:
                if exc.status == 422 and attempt < _ATTEMPTS:
                    continue  # the properties changed between the read and the patch: read again
                self.metrics.api_errors.labels("devices", str(exc.status)).inc()
                raise
            self.metrics.api_writes.labels("devices").inc()
            log.info("desired value set from the dashboard: device=%s/%s %s=%s", namespace, name, prop, value)
            return
