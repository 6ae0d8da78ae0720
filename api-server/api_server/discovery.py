"""Discovery documents: how kubectl learns which resources exist and what they are called.

Legacy discovery (``/api``, ``/apis``, ``/api/v1``, ``/apis/G/V``) and aggregated discovery
(``apidiscovery.k8s.io/v2``, one document for all groups, which kubectl ≥ 1.30 asks for first).
Both are computed from the registry on each request, so a CRD is discoverable once it is stored.
"""

from __future__ import annotations

from typing import Any

from api_server.resources import Registry, ResourceType, subresource_verbs

__all__ = [
    "AGGREGATED_CONTENT_TYPE",
    "aggregated_discovery",
    "api_group",
    "api_group_list",
    "api_resource_list",
    "api_versions",
    "version_info",
]

AGGREGATED_CONTENT_TYPE = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"

Object = dict[str, Any]


def version_info() -> Object:
    return {
        "major": "1",
        "minor": "37",
        "emulationMajor": "1",
        "emulationMinor": "37",
        "gitVersion": "v1.37.0-edgetwin",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-11-01T00:00:00Z",
        "goVersion": "go1.25",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def api_versions(server_address: str) -> Object:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def api_group(group: str, versions: list[str]) -> Object:
    entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": entries,
        "preferredVersion": entries[0],
    }


def api_group_list(registry: Registry) -> Object:
    groups = [api_group(g, vs) for g, vs in sorted(registry.group_versions().items()) if g]
    for group in groups:
        group.pop("kind")
        group.pop("apiVersion")
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def _resource_entries(rtype: ResourceType) -> list[Object]:
    entry: Object = {
        "name": rtype.plural,
        "singularName": rtype.singular,
        "namespaced": rtype.namespaced,
        "kind": rtype.kind,
        "verbs": list(rtype.verbs),
    }
    if rtype.short_names:
        entry["shortNames"] = list(rtype.short_names)
    if rtype.categories:
        entry["categories"] = list(rtype.categories)
    result = [entry]
    for sub in rtype.all_subresources:
        result.append(
            {
                "name": f"{rtype.plural}/{sub}",
                "singularName": "",
                "namespaced": rtype.namespaced,
                "kind": rtype.kind,
                "verbs": list(subresource_verbs(sub)),
            }
        )
    return result


def api_resource_list(registry: Registry, group: str, version: str) -> Object:
    resources: list[Object] = []
    for rtype in registry.in_group_version(group, version):
        resources += _resource_entries(rtype)
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }


def _aggregated_resource(rtype: ResourceType) -> Object:
    kind = {"group": rtype.group, "version": rtype.version, "kind": rtype.kind}
    entry: Object = {
        "resource": rtype.plural,
        "responseKind": kind,
        "scope": "Namespaced" if rtype.namespaced else "Cluster",
        "singularResource": rtype.singular,
        "verbs": list(rtype.verbs),
    }
    if rtype.short_names:
        entry["shortNames"] = list(rtype.short_names)
    if rtype.categories:
        entry["categories"] = list(rtype.categories)
    if rtype.all_subresources:
        entry["subresources"] = [
            {"subresource": sub, "responseKind": kind, "verbs": list(subresource_verbs(sub))}
            for sub in rtype.all_subresources
        ]
    return entry


def aggregated_discovery(registry: Registry, *, legacy: bool) -> Object:
    """``/api`` (``legacy``: the core group only) or ``/apis`` (every named group)."""
    items = []
    for group, versions in sorted(registry.group_versions().items()):
        if bool(group) == legacy:
            continue
        items.append(
            {
                "metadata": {"name": group} if group else {},
                "versions": [
                    {
                        "version": version,
                        "resources": [
                            _aggregated_resource(r) for r in registry.in_group_version(group, version)
                        ],
                        "freshness": "Current",
                    }
                    for version in versions
                ],
            }
        )
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    }
