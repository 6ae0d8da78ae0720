"""``edgetwin discover opc.tcp://…``: browse a server and write its variables as a DeviceModel and a Device.

Onboarding a machine with hundreds of variables should not mean typing hundreds of property
definitions. This browses the server from a root (default: the Objects folder) breadth-first, many
nodes per Browse request, expanding objects and folders and collecting variables (a variable's own
children, such as EURange, describe it and are not expanded). The standard namespace 0 (the
Server object and its diagnostics) is left out unless the root is in it. Then it reads each
variable's DataType, ValueRank and UserAccessLevel in batched Read requests, and writes:

- a property per variable whose type has a DeviceModel type (Boolean → BOOLEAN, integers → INT,
  Float → FLOAT, Double → DOUBLE, texts and times → STRING, ByteString → BYTES; arrays as STRING,
  read-only); ``accessMode`` ReadWrite when the server grants us CurrentWrite;
- names made valid twin keys (``^[a-zA-Z0-9-_.,:/@#]{1,128}$``) and unique: the variable's own
  name, prefixed with its parents' names (``Boiler.Temperature``) only where two would clash;
- the node ids as visitors (``nodeID: ns=2;s=Boiler.Temperature``).

The session is anonymous and unsecured: servers that refuse that need their manifests by hand.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from asyncua import Client, ua

from mappers.discovery import Discovered, DiscoverOptions, Progress, manifest_name
from mappers.opcua.convert import property_type
from mappers.opcua.link import builtin_type, describe_status, translate
from twin.errors import DeviceRefused, InvalidManifest
from twin.models import Device, DeviceModel

__all__ = ["discover"]

BROWSE_BATCH = 100  # nodes per Browse request
READ_BATCH = 200  # variables per Read request (4 attributes each)
MAX_NODES = 50_000  # a guard against endless address spaces (servers with loops of references)
MAX_DEPTH = 32
COLLECT_CYCLE_MS = 1000

_KEY_CHAR = re.compile(r"[^a-zA-Z0-9_.,:/@#-]+")


@dataclass(frozen=True)
class _Variable:
    node_id: ua.NodeId
    path: tuple[str, ...]  # browse names from the root (excluded) to the variable


def _plain(node_id: ua.NodeId) -> ua.NodeId:
    """An ExpandedNodeId from a browse result as a plain NodeId (reads want those)."""
    return ua.NodeId(node_id.Identifier, node_id.NamespaceIndex, node_id.NodeIdType)


def _twin_key(text: str) -> str:
    key = _KEY_CHAR.sub("-", text).strip("-")[:128]
    return key or "property"


def unique_names(paths: Sequence[tuple[str, ...]]) -> list[str]:
    """Short unique twin keys: the last name, with as many parents as it takes to tell them apart."""
    depth = [1] * len(paths)
    while True:
        names = [_twin_key(".".join(path[-d:])) for path, d in zip(paths, depth, strict=True)]
        groups: dict[str, list[int]] = {}
        for i, name in enumerate(names):
            groups.setdefault(name, []).append(i)
        grew = False
        for members in groups.values():
            if len(members) > 1:
                for i in members:
                    if depth[i] < len(paths[i]):
                        depth[i] += 1
                        grew = True
        if not grew:
            break
    seen: dict[str, int] = {}
    result = []
    for name in names:
        count = seen[name] = seen.get(name, 0) + 1
        result.append(name if count == 1 else _twin_key(f"{name[:120]}-{count}"))
    return result


async def _root(client: Client, text: str | None) -> ua.NodeId:
    if not text:
        return ua.NodeId(ua.Int32(ua.ObjectIds.ObjectsFolder))
    if "=" in text:
        try:
            return ua.NodeId.from_string(text)
        except ua.UaStringParsingError as exc:
            raise InvalidManifest(f"--root {text!r} is not a node id or a browse path") from exc
    path = text if text.startswith("/") else "/" + text
    try:
        relative = ua.RelativePath.from_string(path)
    except (ValueError, ua.UaError) as exc:
        raise InvalidManifest(f"--root {text!r} is not a node id or a browse path ({exc})") from exc
    (answer,) = await client.translate_browsepaths(ua.NodeId(ua.Int32(ua.ObjectIds.RootFolder)), [relative])
    if not answer.StatusCode.is_good() or not answer.Targets:
        raise DeviceRefused(f"--root {text!r}: {describe_status(answer.StatusCode)}")
    return _plain(answer.Targets[0].TargetId)


async def _browse(client: Client, nodes: list[ua.NodeId]) -> list[list[ua.ReferenceDescription]]:
    params = ua.BrowseParameters()
    params.RequestedMaxReferencesPerNode = 0
    for node_id in nodes:
        desc = ua.BrowseDescription()
        desc.NodeId = node_id
        desc.BrowseDirection = ua.BrowseDirection.Forward
        desc.ReferenceTypeId = ua.NodeId(ua.Int32(ua.ObjectIds.HierarchicalReferences))
        desc.IncludeSubtypes = True
        desc.NodeClassMask = ua.NodeClass.Object | ua.NodeClass.Variable
        desc.ResultMask = ua.BrowseResultMask.All
        params.NodesToBrowse.append(desc)
    results = await client.uaclient.browse(params)
    references: list[list[ua.ReferenceDescription]] = []
    for result in results:
        refs = list(result.References or [])
        point = result.ContinuationPoint
        while point:
            more = ua.BrowseNextParameters()
            more.ContinuationPoints = [point]
            (next_result,) = await client.uaclient.browse_next(more)
            refs.extend(next_result.References or [])
            point = next_result.ContinuationPoint
        references.append(refs)
    return references


async def _walk(client: Client, root: ua.NodeId, progress: Progress, notes: list[str]) -> list[_Variable]:
    skip_standard = root.NamespaceIndex != 0 or root == ua.NodeId(ua.Int32(ua.ObjectIds.ObjectsFolder))
    frontier: list[tuple[ua.NodeId, tuple[str, ...]]] = [(root, ())]
    seen = {root}
    variables: list[_Variable] = []
    depth = 0
    while frontier and depth < MAX_DEPTH:
        depth += 1
        following: list[tuple[ua.NodeId, tuple[str, ...]]] = []
        for start in range(0, len(frontier), BROWSE_BATCH):
            batch = frontier[start : start + BROWSE_BATCH]
            found = await _browse(client, [node for node, _ in batch])
            for (_, path), refs in zip(batch, found, strict=True):
                for ref in refs:
                    node_id = _plain(ref.NodeId)
                    if node_id in seen or (skip_standard and node_id.NamespaceIndex == 0):
                        continue
                    seen.add(node_id)
                    child = (*path, ref.BrowseName.Name or str(node_id.Identifier))
                    if ref.NodeClass == ua.NodeClass.Variable:
                        variables.append(_Variable(node_id, child))
                    else:
                        following.append((node_id, child))
            progress(f"browsed {len(seen)} node(s) to depth {depth}: {len(variables)} variable(s) so far")
            if len(seen) >= MAX_NODES:
                notes.append(f"stopped browsing after {MAX_NODES} nodes; use --root to browse a part")
                return variables
        frontier = following
    if frontier:
        notes.append(f"stopped browsing at depth {MAX_DEPTH}; use --root to browse deeper parts")
    return variables


_ATTRIBUTES = (
    ua.AttributeIds.DataType,
    ua.AttributeIds.ValueRank,
    ua.AttributeIds.UserAccessLevel,
    ua.AttributeIds.Value,
)


async def _describe(
    client: Client, variables: list[_Variable], progress: Progress
) -> list[list[ua.DataValue]]:
    described: list[list[ua.DataValue]] = []
    for start in range(0, len(variables), READ_BATCH):
        batch = variables[start : start + READ_BATCH]
        params = ua.ReadParameters()
        for var in batch:
            for attr in _ATTRIBUTES:
                params.NodesToRead.append(ua.ReadValueId(NodeId=var.node_id, AttributeId=attr))
        values = await client.uaclient.read(params)
        n = len(_ATTRIBUTES)
        described.extend(values[i * n : (i + 1) * n] for i in range(len(batch)))
        if len(variables) > READ_BATCH:
            progress(f"read the types of {len(described)} of {len(variables)} variable(s)")
    return described


def _attr(value: ua.DataValue) -> Any:
    if value.StatusCode is not None and not value.StatusCode.is_good():
        return None
    return None if value.Value is None else value.Value.Value


async def _properties(
    client: Client, variables: list[_Variable], progress: Progress, notes: list[str]
) -> list[tuple[_Variable, dict[str, Any]]]:
    """Each representable variable with its DeviceModel property (name filled in later)."""
    described = await _describe(client, variables, progress)
    types: dict[ua.NodeId, ua.VariantType] = {}
    kept: list[tuple[_Variable, dict[str, Any]]] = []
    skipped: list[str] = []
    for var, (dtype, rank, access, value) in zip(variables, described, strict=True):
        data_type = _attr(dtype)
        if not isinstance(data_type, ua.NodeId):
            skipped.append(f"{var.node_id.to_string()} (no DataType)")
            continue
        vtype = types.get(data_type)
        if vtype is None:
            vtype = types[data_type] = await builtin_type(client, data_type)
        if vtype is ua.VariantType.Variant and value.Value is not None:
            vtype = value.Value.VariantType  # an abstract type (BaseDataType, Number): what it holds now
        is_array = isinstance(_attr(rank), int) and _attr(rank) >= 0
        ptype = property_type(vtype)
        if is_array:
            ptype = property_type(ua.VariantType.String)
        if ptype is None:
            skipped.append(f"{var.node_id.to_string()} ({vtype.name})")
            continue
        level = _attr(access)
        writable = (
            not is_array
            and isinstance(level, int)
            and ua.ua_binary.test_bit(level, ua.AccessLevel.CurrentWrite)
        )
        prop: dict[str, Any] = {"type": ptype.value, "accessMode": "ReadWrite" if writable else "ReadOnly"}
        prop["description"] = f"{'/'.join(var.path)} ({vtype.name}{' array' if is_array else ''})"
        kept.append((var, prop))
    if skipped:
        shown = ", ".join(skipped[:5]) + (f" and {len(skipped) - 5} more" if len(skipped) > 5 else "")
        notes.append(f"left out {len(skipped)} variable(s) with no DeviceModel type: {shown}")
    return kept


def _device_name(target: str, options: DiscoverOptions) -> str:
    if options.name:
        return manifest_name(options.name)
    url = urlparse(target)
    segments = [s for s in url.path.split("/") if s]
    return manifest_name(segments[-1] if segments else url.hostname or "opcua", fallback="opcua-device")


async def discover(target: str, options: DiscoverOptions, progress: Progress) -> Discovered:
    """Browse the server at ``target`` and describe its variables as one DeviceModel and one Device."""
    timeout = max(options.timeout, 1.0)
    client = Client(target, timeout=timeout)
    client.name = client.description = "edgetwin discover"
    progress(f"connecting to {target}")
    try:
        async with asyncio.timeout(timeout * 3):
            await client.connect()
    except (ua.UaError, OSError, TimeoutError) as exc:
        client.disconnect_socket()
        raise translate(exc, f"cannot browse {target}") from exc
    notes: list[str] = []
    try:
        try:
            root = await _root(client, options.root)
            variables = await _walk(client, root, progress, notes)
            found = await _properties(client, variables, progress, notes)
        except (ua.UaError, OSError, TimeoutError) as exc:
            raise translate(exc, f"browsing {target}") from exc
    finally:
        try:
            async with asyncio.timeout(timeout):
                await client.disconnect()
        except (ua.UaError, OSError, TimeoutError):
            client.disconnect_socket()
    progress(f"found {len(found)} variable(s) with a DeviceModel type")
    name = _device_name(target, options)
    model_name = f"{name}-model"
    names = unique_names([var.path for var, _ in found])
    model = DeviceModel.model_validate(
        {
            "metadata": {"name": model_name, "namespace": options.namespace},
            "spec": {
                "protocol": "opcua",
                "properties": [{"name": n, **prop} for n, (_, prop) in zip(names, found, strict=True)],
            },
        }
    )
    device = Device.model_validate(
        {
            "metadata": {
                "name": name,
                "namespace": options.namespace,
                "labels": {"edgetwin.io/protocol": "opcua"},
            },
            "spec": {
                "deviceModelRef": {"name": model_name},
                "nodeName": options.node,
                "protocol": {"protocolName": "opcua", "configData": {"url": target}},
                "properties": [
                    {
                        "name": n,
                        "collectCycle": COLLECT_CYCLE_MS,
                        "reportCycle": COLLECT_CYCLE_MS,
                        "reportToCloud": True,
                        "visitors": {
                            "protocolName": "opcua",
                            "configData": {"nodeID": var.node_id.to_string()},
                        },
                    }
                    for n, (var, _) in zip(names, found, strict=True)
                ],
            },
        }
    )
    notes.insert(0, f"Discovered by edgetwin from {target}: {len(found)} variable(s).")
    if not found:
        notes.append("no variables found: try --root with a node id (ns=2;s=Machine) or a browse path")
    return Discovered(models=(model,), devices=(device,), notes=tuple(notes))
