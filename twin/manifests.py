"""Load Device and DeviceModel objects from the YAML files a user gives kubectl.

Files and folders (``*.yaml``, ``*.yml``, searched recursively), several documents per file.
Documents of other kinds (a CRD, a Namespace) are skipped. Every error names the file, the object
and the field, because the user has to find it in a folder of manifests.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from twin.errors import InvalidManifest
from twin.models import API_GROUP, Device, DeviceModel

__all__ = ["Manifests", "check_consistency", "load_manifests", "parse_manifest"]

log = logging.getLogger(__name__)


@dataclass
class Manifests:
    """What a set of files declares, keyed by ``namespace/name``."""

    models: dict[str, DeviceModel] = field(default_factory=dict)
    devices: dict[str, Device] = field(default_factory=dict)


def _describe(doc: dict[str, Any]) -> str:
    meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    assert isinstance(meta, dict)
    name = meta.get("name", "<no name>")
    namespace = meta.get("namespace", "default")
    return f"{doc.get('kind', '<no kind>')} {namespace}/{name}"


def _format_validation(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "<object>"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def parse_manifest(doc: object, *, source: str = "<input>") -> Device | DeviceModel | None:
    """Validate one YAML/JSON document; ``None`` for kinds edgetwin does not load."""
    if not isinstance(doc, dict):
        raise InvalidManifest(f"{source}: a manifest must be a mapping, got {type(doc).__name__}")
    api_version = str(doc.get("apiVersion", ""))
    kind = doc.get("kind")
    if not api_version.startswith(f"{API_GROUP}/") or kind not in ("Device", "DeviceModel"):
        return None
    cls: type[Device] | type[DeviceModel] = Device if kind == "Device" else DeviceModel
    try:
        return cls.model_validate(doc)
    except ValidationError as exc:
        raise InvalidManifest(f"{source}: {_describe(doc)}: {_format_validation(exc)}") from exc


def _yaml_files(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
        elif path.exists():
            yield path
        else:
            raise InvalidManifest(f"{path}: no such file or folder")


def load_manifests(paths: Iterable[Path | str]) -> Manifests:
    """Load every Device and DeviceModel under ``paths``; raise ``InvalidManifest`` on the first bad one."""
    result = Manifests()
    import yaml  # only here: a node serving from its store never reads YAML (start-up time)

    for file in _yaml_files(Path(p) for p in paths):
        try:
            docs = list(yaml.safe_load_all(file.read_text(encoding="utf-8")))
        except yaml.YAMLError as exc:
            raise InvalidManifest(f"{file}: not valid YAML: {exc}") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidManifest(f"{file}: cannot be read: {exc}") from exc
        for index, doc in enumerate(docs):
            if doc is None:
                continue
            obj = parse_manifest(doc, source=f"{file} (document {index + 1})")
            if isinstance(obj, DeviceModel):
                result.models[obj.key] = obj
            elif isinstance(obj, Device):
                result.devices[obj.id] = obj
    check_consistency(result)
    return result


def check_consistency(manifests: Manifests) -> None:
    """Each Device names an existing model, and only properties that model declares."""
    for device in manifests.devices.values():
        model = manifests.models.get(device.model_key)
        if model is None:
            raise InvalidManifest(
                f"Device {device.id}: spec.deviceModelRef.name: no DeviceModel "
                f"{device.model_key} in the given files"
            )
        for index, prop in enumerate(device.spec.properties):
            if model.property(prop.name) is None:
                raise InvalidManifest(
                    f"Device {device.id}: spec.properties[{index}].name: DeviceModel "
                    f"{model.key} has no property {prop.name!r}"
                )
