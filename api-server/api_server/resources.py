"""What the server serves: resource types (built-in and from CRDs) and the registry of them.

Every request starts by finding its ``ResourceType`` from the URL (group, version, plural).
Built-in types are declared once in ``builtin.py``; a CustomResourceDefinition becomes one
``ResourceType`` per served version the moment it is stored, and disappears when it is deleted.
Objects are stored per group and plural (``ResourceType.key``), whatever the version asked for.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from api_server.errors import Cause, Invalid, NotFound

__all__ = [
    "PrinterColumn",
    "Registry",
    "ResourceType",
    "resource_types_from_crd",
    "subresource_verbs",
    "validate_crd",
]

log = logging.getLogger(__name__)

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
SUBRESOURCE_VERBS = ("get", "patch", "update")
#: Subresources with verbs of their own (pods' ``binding`` is created, ``log`` only read).
SPECIAL_SUBRESOURCE_VERBS = {"binding": ("create",), "log": ("get",)}


def subresource_verbs(subresource: str) -> tuple[str, ...]:
    return SPECIAL_SUBRESOURCE_VERBS.get(subresource, SUBRESOURCE_VERBS)


@dataclass(frozen=True)
class PrinterColumn:
    """One column of ``kubectl get`` (a CRD's ``additionalPrinterColumns`` entry)."""

    name: str
    type: str
    json_path: str
    description: str = ""
    priority: int = 0
    format: str = ""


@dataclass(frozen=True)
class ResourceType:
    """One resource in one group version, e.g. ``devices.kubeedge.io/v1beta1 devices``."""

    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    status_subresource: bool = False
    custom: bool = False
    schema: Mapping[str, Any] | None = None
    printer_columns: tuple[PrinterColumn, ...] = ()
    # Core types with no generation bump on metadata-only change etc. are kept simple: every
    # type bumps metadata.generation when anything but metadata and status changes.
    allow_unconditional_update: bool = True
    verbs: tuple[str, ...] = ALL_VERBS
    subresources: tuple[str, ...] = field(default=())

    @property
    def key(self) -> str:
        """Storage key: objects are shared by all versions of a group and plural."""
        return f"{self.group}/{self.plural}" if self.group else self.plural

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self) -> str:
        return self.api_version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def all_subresources(self) -> tuple[str, ...]:
        subs = tuple(self.subresources)
        if self.status_subresource and "status" not in subs:
            subs = ("status", *subs)
        return subs

    @property
    def qualified(self) -> str:
        """``devices.devices.kubeedge.io``: how error messages name the resource."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


def _str_tuple(value: object) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(str(v) for v in value)
    return ()


def validate_crd(crd: Mapping[str, Any]) -> None:
    """Reject a CustomResourceDefinition the server could not serve, naming the field."""
    name = str(crd.get("metadata", {}).get("name", ""))
    spec = crd.get("spec")
    causes: list[Cause] = []
    if not isinstance(spec, dict):
        raise Invalid(
            "CustomResourceDefinition", "apiextensions.k8s.io", name, [Cause("spec", "Required value")]
        )
    group = spec.get("group")
    names = spec.get("names") if isinstance(spec.get("names"), dict) else {}
    assert isinstance(names, dict)
    if not isinstance(group, str) or "." not in group:
        causes.append(
            Cause("spec.group", f"Invalid value: {group!r}: should be a domain with at least one dot")
        )
    for key in ("plural", "kind"):
        if not isinstance(names.get(key), str) or not names.get(key):
            causes.append(Cause(f"spec.names.{key}", "Required value", "FieldValueRequired"))
    if (
        isinstance(names.get("plural"), str)
        and isinstance(group, str)
        and name != f"{names['plural']}.{group}"
    ):
        causes.append(
            Cause("metadata.name", f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group')
        )
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        causes.append(
            Cause(
                "spec.scope",
                f'Unsupported value: {spec.get("scope")!r}: supported values: "Cluster", "Namespaced"',
                "FieldValueNotSupported",
            )
        )
    versions = spec.get("versions")
    if not isinstance(versions, list) or not versions:
        causes.append(Cause("spec.versions", "Required value", "FieldValueRequired"))
    else:
        storage = [v for v in versions if isinstance(v, dict) and v.get("storage")]
        if len(storage) != 1:
            causes.append(
                Cause(
                    "spec.versions", "Invalid value: must have exactly one version marked as storage version"
                )
            )
        for index, version in enumerate(versions):
            if not isinstance(version, dict) or not version.get("name"):
                causes.append(Cause(f"spec.versions[{index}].name", "Required value", "FieldValueRequired"))
    if causes:
        raise Invalid("CustomResourceDefinition", "apiextensions.k8s.io", name, causes)


def resource_types_from_crd(crd: Mapping[str, Any]) -> list[ResourceType]:
    """One ResourceType per served version of a (valid) CRD."""
    spec = crd["spec"]
    names = spec["names"]
    plural = names["plural"]
    result = []
    for version in spec["versions"]:
        if not version.get("served", True):
            continue
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        columns = tuple(
            PrinterColumn(
                name=str(col.get("name", "")),
                type=str(col.get("type", "string")),
                json_path=str(col.get("jsonPath", "")),
                description=str(col.get("description", "")),
                priority=int(col.get("priority", 0)),
                format=str(col.get("format", "")),
            )
            for col in version.get("additionalPrinterColumns") or []
            if isinstance(col, dict)
        )
        subresources = version.get("subresources") or {}
        result.append(
            ResourceType(
                group=spec["group"],
                version=version["name"],
                plural=plural,
                singular=names.get("singular") or names["kind"].lower(),
                kind=names["kind"],
                namespaced=spec["scope"] == "Namespaced",
                short_names=_str_tuple(names.get("shortNames")),
                categories=_str_tuple(names.get("categories")),
                status_subresource="status" in subresources,
                custom=True,
                schema=schema if isinstance(schema, dict) else None,
                printer_columns=columns,
                allow_unconditional_update=False,
            )
        )
    return result


class Registry:
    """The resource types currently served, by group version and plural."""

    def __init__(self, builtins: Iterable[ResourceType]) -> None:
        self._builtin: dict[tuple[str, str, str], ResourceType] = {}
        self._custom: dict[str, list[ResourceType]] = {}  # CRD name -> its types
        for rtype in builtins:
            self._builtin[(rtype.group, rtype.version, rtype.plural)] = rtype

    def add_crd(self, crd: Mapping[str, Any]) -> None:
        name = str(crd["metadata"]["name"])
        self._custom[name] = resource_types_from_crd(crd)
        log.debug("serving %s", name)

    def remove_crd(self, name: str) -> None:
        self._custom.pop(name, None)

    def __iter__(self) -> Iterator[ResourceType]:
        yield from self._builtin.values()
        for types in self._custom.values():
            yield from types

    def find(self, group: str, version: str, plural: str) -> ResourceType:
        found = self._builtin.get((group, version, plural))
        if found is not None:
            return found
        for types in self._custom.values():
            for rtype in types:
                if (rtype.group, rtype.version, rtype.plural) == (group, version, plural):
                    return rtype
        raise NotFound("the server could not find the requested resource")

    def by_key(self, key: str) -> list[ResourceType]:
        return [r for r in self if r.key == key]

    def group_versions(self) -> dict[str, list[str]]:
        """Group -> served versions, the preferred one (the first declared) first."""
        result: dict[str, list[str]] = {}
        for rtype in self:
            versions = result.setdefault(rtype.group, [])
            if rtype.version not in versions:
                versions.append(rtype.version)
        return result

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [r for r in self if r.group == group and r.version == version]
