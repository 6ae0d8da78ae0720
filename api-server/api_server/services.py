"""What the server fills into a Service, as kube-apiserver does: defaults, a cluster IP, node ports.

No proxy runs here (no kube-proxy, no endpoints): a Service is stored and served so that manifests
apply unchanged, ``kubectl get svc`` shows what a cluster would, and ``kubectl cluster-info`` finds
the cluster's services. The server still owns what kube-apiserver allocates: ``spec.clusterIP``
from the service range 10.96.0.0/12 (the first free address, skipping 10.96.0.1 and 10.96.0.10,
which clusters give the ``kubernetes`` Service and DNS), a ``nodePort`` from 30000-32767 for each
port of a NodePort or LoadBalancer Service, both kept across updates that leave them out and
refused when taken or out of range (422, the field named, in kube-apiserver's words).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from api_server.errors import Cause

__all__ = ["prepare_service", "service_causes", "update_service"]

Object = dict[str, Any]

SERVICE_RANGE = ipaddress.ip_network("10.96.0.0/12")
_RESERVED = {ipaddress.ip_address("10.96.0.1"), ipaddress.ip_address("10.96.0.10")}
NODE_PORTS = range(30000, 32768)
_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")


def _spec(obj: Object) -> Object:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        spec = obj["spec"] = {}
    return spec


def _ports(spec: Object) -> list[Object]:
    ports = spec.get("ports")
    return [p for p in ports if isinstance(p, dict)] if isinstance(ports, list) else []


def _default(spec: Object) -> None:
    """The defaults of every write (the real server's ``SetDefaults_Service``)."""
    kind = spec.setdefault("type", "ClusterIP")
    if kind == "ExternalName":
        return
    spec.setdefault("sessionAffinity", "None")
    spec.setdefault("internalTrafficPolicy", "Cluster")
    if kind in ("NodePort", "LoadBalancer"):
        spec.setdefault("externalTrafficPolicy", "Cluster")
    if kind == "LoadBalancer":
        spec.setdefault("allocateLoadBalancerNodePorts", True)
    for port in _ports(spec):
        port.setdefault("protocol", "TCP")
        if "port" in port:
            port.setdefault("targetPort", port["port"])


def _taken(others: Iterable[Object], own_uid: str) -> tuple[set[str], set[int]]:
    ips: set[str] = set()
    node_ports: set[int] = set()
    for other in others:
        if other.get("metadata", {}).get("uid") == own_uid:
            continue
        spec = other.get("spec") or {}
        if isinstance(spec.get("clusterIP"), str):
            ips.add(spec["clusterIP"])
        node_ports.update(p["nodePort"] for p in _ports(spec) if isinstance(p.get("nodePort"), int))
    return ips, node_ports


def _allocate(spec: Object, others: Iterable[Object], own_uid: str) -> None:
    kind = spec.get("type")
    if kind == "ExternalName":
        return
    ips, node_ports = _taken(others, own_uid)
    if not spec.get("clusterIP"):
        free = next(
            str(a) for a in SERVICE_RANGE.hosts() if a not in _RESERVED and str(a) not in ips
        )  # 2**20 addresses: never exhausted by a single-machine cluster
        spec["clusterIP"] = free
    if spec["clusterIP"] != "None":
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
    if kind in ("NodePort", "LoadBalancer") and spec.get("allocateLoadBalancerNodePorts", True):
        for port in _ports(spec):
            if "nodePort" not in port:
                port["nodePort"] = next(n for n in NODE_PORTS if n not in node_ports)
                node_ports.add(port["nodePort"])


def prepare_service(obj: Object, stored: Iterable[Object]) -> None:
    """A new Service: defaults, its cluster IP and node ports (``stored``: every Service there is)."""
    spec = _spec(obj)
    _default(spec)
    _allocate(spec, stored, str(obj["metadata"].get("uid", "")))
    obj["status"] = {"loadBalancer": {}}


def update_service(old: Object, new: Object, stored: Iterable[Object]) -> None:
    """An updated Service: what it leaves out of what was allocated it keeps, as kube-apiserver does;
    a port that becomes a node port gets one."""
    spec, old_spec = _spec(new), old.get("spec") or {}
    _default(spec)
    if spec.get("type") != "ExternalName":
        for key in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
            if key not in spec and key in old_spec:
                spec[key] = old_spec[key]
    old_ports = {(p.get("port"), p.get("protocol", "TCP")): p for p in _ports(old_spec)}
    if spec.get("type") in ("NodePort", "LoadBalancer"):
        for port in _ports(spec):
            before = old_ports.get((port.get("port"), port.get("protocol")))
            if "nodePort" not in port and before is not None and "nodePort" in before:
                port["nodePort"] = before["nodePort"]
    _allocate(spec, stored, str(new["metadata"].get("uid", "")))


def _cluster_ip_causes(spec: Object, ips: set[str]) -> list[Cause]:
    value = spec.get("clusterIP")
    if value in (None, "", "None") or spec.get("type") == "ExternalName":
        return []
    try:
        address = ipaddress.ip_address(str(value))
    except ValueError:
        return [Cause("spec.clusterIPs[0]", f'Invalid value: "{value}": must be a valid IP address')]
    if address not in SERVICE_RANGE:
        return [
            Cause(
                "spec.clusterIPs",
                f'Invalid value: []string{{"{value}"}}: failed to allocate IP {value}: the provided IP '
                f"({value}) is not in the valid range. The range of valid IPs is {SERVICE_RANGE}",
            )
        ]
    if str(address) in ips:
        return [
            Cause(
                "spec.clusterIPs",
                f'Invalid value: []string{{"{value}"}}: failed to allocate IP {value}: '
                "provided IP is already allocated",
            )
        ]
    return []


def service_causes(obj: Object, stored: Iterable[Object], old: Object | None) -> list[Cause]:
    """What kube-apiserver would refuse in this Service (``old``: the stored one, on an update)."""
    spec = obj.get("spec") or {}
    causes: list[Cause] = []
    kind = spec.get("type")
    if kind not in _TYPES:
        supported = ", ".join(f'"{t}"' for t in _TYPES)
        return [
            Cause(
                "spec.type",
                f'Unsupported value: "{kind}": supported values: {supported}',
                "FieldValueNotSupported",
            )
        ]
    if kind == "ExternalName" and not spec.get("externalName"):
        causes.append(Cause("spec.externalName", "Required value", "FieldValueRequired"))
    ports = _ports(spec)
    if kind != "ExternalName" and spec.get("clusterIP") != "None" and not ports:
        causes.append(Cause("spec.ports", "Required value", "FieldValueRequired"))
    ips, node_ports = _taken(stored, str(obj["metadata"].get("uid", "")))
    causes += _cluster_ip_causes(spec, ips)
    old_ip = (old or {}).get("spec", {}).get("clusterIP")
    if old is not None and old_ip and spec.get("clusterIP") != old_ip and kind != "ExternalName":
        causes.append(Cause("spec.clusterIPs[0]", "Invalid value: field is immutable"))
    names: set[str] = set()
    for index, port in enumerate(ports):
        number = port.get("port")
        if not isinstance(number, int) or isinstance(number, bool) or not 1 <= number <= 65535:
            causes.append(
                Cause(f"spec.ports[{index}].port", f"Invalid value: {number}: must be between 1 and 65535")
            )
        name = port.get("name", "")
        if len(ports) > 1 and not name:
            causes.append(Cause(f"spec.ports[{index}].name", "Required value", "FieldValueRequired"))
        if name and name in names:
            causes.append(
                Cause(f"spec.ports[{index}].name", f'Duplicate value: "{name}"', "FieldValueDuplicate")
            )
        names.add(name)
        node_port = port.get("nodePort")
        if node_port is None:
            continue
        if kind not in ("NodePort", "LoadBalancer"):
            causes.append(
                Cause(
                    f"spec.ports[{index}].nodePort",
                    f"Forbidden: may not be used when `type` is '{kind}'",
                    "FieldValueForbidden",
                )
            )
        elif not isinstance(node_port, int) or node_port not in NODE_PORTS:
            causes.append(
                Cause(
                    f"spec.ports[{index}].nodePort",
                    f"Invalid value: {node_port}: provided port is not in the valid range. "
                    "The range of valid ports is 30000-32767",
                )
            )
        elif node_port in node_ports:
            causes.append(
                Cause(
                    f"spec.ports[{index}].nodePort",
                    f"Invalid value: {node_port}: provided port is already allocated",
                )
            )
    return causes
