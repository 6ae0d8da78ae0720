"""What a node tells the cloud about itself in its heartbeats: node info, addresses, capacity.

cloud-sync makes these the ``v1 Node``'s ``status.nodeInfo``, ``status.addresses`` and
``status.capacity``/``allocatable`` (``kubectl get nodes -o wide`` shows them). Everything is read
from the machine (``/etc/machine-id``, ``/proc``, ``/etc/os-release``, the network interfaces);
whatever cannot be read is left empty, never an error: a heartbeat must always go out.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import logging
import os
import platform
import socket
import struct
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

from twin.link import Address, NodeInfo

__all__ = ["MAX_PODS", "addresses", "capacity", "node_info"]

log = logging.getLogger(__name__)

#: Pods a node accepts: the kubelet's (and KubeEdge's edged) default ``maxPods``.
MAX_PODS = 110
# Kubernetes names architectures as Go does.
_ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "armv6l": "arm", "i686": "386"}
_SIOCGIFADDR = 0x8915


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""


def _os_image(os_release: str) -> str:
    for line in os_release.splitlines():
        key, _, value = line.partition("=")
        if key == "PRETTY_NAME":
            return value.strip().strip('"')
    return ""


def _version() -> str:
    try:
        return metadata.version("edgetwin")
    except metadata.PackageNotFoundError:
        return "unknown"


def node_info() -> NodeInfo:
    machine = platform.machine()
    return NodeInfo(
        machineID=_read("/etc/machine-id") or _read("/var/lib/dbus/machine-id"),
        bootID=_read("/proc/sys/kernel/random/boot_id"),
        kernelVersion=platform.release(),
        osImage=_os_image(_read("/etc/os-release")) or platform.platform(),
        operatingSystem=platform.system().lower() or "linux",
        architecture=_ARCHITECTURES.get(machine, machine),
        kubeletVersion=f"v{_version()}-edgetwin",
    )


def _interface_ipv4(name: str) -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            packed = fcntl.ioctl(sock.fileno(), _SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
        except OSError:
            return None  # no IPv4 address on this interface
    return socket.inet_ntoa(packed[20:24])


def _ipv6_addresses() -> Iterable[str]:
    for line in _read("/proc/net/if_inet6").splitlines():
        fields = line.split()
        if fields:
            yield str(ipaddress.IPv6Address(bytes.fromhex(fields[0])))


def addresses(preferred: str | None = None) -> list[Address]:
    """The node's host name and its IP addresses, ``preferred`` (the one it reaches the cloud from) first."""
    found: list[str] = []
    if preferred:
        found.append(preferred)
    with contextlib.suppress(OSError):
        for _, name in socket.if_nameindex():
            ip = _interface_ipv4(name)
            if ip is not None:
                found.append(ip)
    with contextlib.suppress(ValueError):
        found.extend(_ipv6_addresses())
    ips: list[str] = []
    for text in found:
        try:
            parsed = ipaddress.ip_address(text)
        except ValueError:
            continue
        if parsed.is_loopback or parsed.is_link_local or str(parsed) in ips:
            continue
        ips.append(str(parsed))
    result = [Address(type="InternalIP", address=ip) for ip in ips]
    result.append(Address(type="Hostname", address=socket.gethostname()))
    return result


def capacity() -> dict[str, str]:
    result = {"pods": str(MAX_PODS)}
    cpus = os.cpu_count()
    if cpus:
        result["cpu"] = str(cpus)
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            fields = line.split()
            if len(fields) >= 2 and fields[1].isdigit():
                result["memory"] = f"{fields[1]}Ki"
            break
    return result
