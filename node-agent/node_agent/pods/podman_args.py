"""The ``podman run`` command line for one container instance, built from a resolved ``Launch``.

Kept apart from ``node_agent.pods.podman`` (which runs it) so that the translation from a pod spec
to podman flags reads as one table: every Kubernetes field the podman runtime honours appears
here, and ``PodmanRuntime.unsupported`` refuses the rest. Kubernetes quantities (``512Mi``,
``250m``) are converted here too.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from node_agent.pods.admission import container_context
from node_agent.pods.runtime import Launch

__all__ = [
    "LABEL_CONTAINER",
    "LABEL_INSTANCE",
    "LABEL_NODE",
    "LABEL_POD",
    "LABEL_SPEC",
    "LABEL_UID",
    "RunOptions",
    "container_name",
    "cpus",
    "memory_bytes",
    "run_command",
]

LABEL_NODE = "io.edgetwin.node"
LABEL_UID = "io.edgetwin.pod-uid"
LABEL_POD = "io.edgetwin.pod"
LABEL_CONTAINER = "io.edgetwin.container"
LABEL_INSTANCE = "io.edgetwin.instance"
LABEL_SPEC = "io.edgetwin.spec-hash"

_QUANTITY = re.compile(r"^([0-9.]+)([a-zA-Z]*)$")
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18, "m": 10**-3}


def _quantity(value: str | int | float) -> float:
    match = _QUANTITY.match(str(value).strip())
    if not match:
        raise ValueError(f"not a Kubernetes quantity: {value!r}")
    number, unit = float(match.group(1)), match.group(2)
    factor = _BINARY.get(unit) or _DECIMAL.get(unit)
    if factor is None:
        raise ValueError(f"unknown unit {unit!r} in quantity {value!r}")
    return number * factor


def memory_bytes(value: str | int | float) -> int:
    """``512Mi`` → 536870912."""
    return int(_quantity(value))


def cpus(value: str | int | float) -> float:
    """``250m`` → 0.25 (podman's ``--cpus``)."""
    return _quantity(value)


def container_name(uid: str, container: str) -> str:
    return f"edgetwin-{uid}-{container}"


@dataclass(frozen=True)
class RunOptions:
    node: str
    spec_hash: str
    log_max_bytes: int
    conmon_pidfile: str
    ulimits: tuple[str, ...]


def run_command(launch: Launch, options: RunOptions) -> list[str]:
    """``podman run -d …`` arguments (after the global flags) for ``launch``."""
    pod, container = launch.pod, launch.container
    meta, spec = pod.metadata, pod.spec
    args = [
        "run",
        "--detach",
        "--pull=never",
        "--name",
        container_name(meta.uid, container.name),
        "--label",
        f"{LABEL_NODE}={options.node}",
        "--label",
        f"{LABEL_UID}={meta.uid}",
        "--label",
        f"{LABEL_POD}={meta.namespace}/{meta.name}",
        "--label",
        f"{LABEL_CONTAINER}={container.name}",
        "--label",
        f"{LABEL_INSTANCE}={launch.instance}",
        "--label",
        f"{LABEL_SPEC}={options.spec_hash}",
        "--log-driver",
        "k8s-file",
        "--log-opt",
        f"path={launch.log_path}",
        "--log-opt",
        f"max-size={options.log_max_bytes}",
        "--conmon-pidfile",
        options.conmon_pidfile,
    ]
    for ulimit in options.ulimits:
        args += ["--ulimit", ulimit]
    if spec.host_network:
        args += ["--network", "host"]
    else:
        args += ["--network", "none", "--hostname", meta.name[:63]]
    if spec.host_pid:
        args += ["--pid", "host"]
    if spec.host_ipc:
        args += ["--ipc", "host"]
    for key, value in launch.env.items():
        args += ["--env", f"{key}={value}"]
    if container.working_dir:
        args += ["--workdir", container.working_dir]
    limits = container.resources.limits
    if "memory" in limits:
        args += ["--memory", str(memory_bytes(limits["memory"]))]
    if "cpu" in limits:
        args += ["--cpus", f"{cpus(limits['cpu']):g}"]
    context = container_context(pod, container)
    if context.run_as_user is not None or context.run_as_group is not None:
        user = str(context.run_as_user if context.run_as_user is not None else 0)
        args += ["--user", user if context.run_as_group is None else f"{user}:{context.run_as_group}"]
    if context.read_only_root_filesystem:
        args.append("--read-only")
    if context.privileged:
        args.append("--privileged")
    extra = (container.security_context.model_extra or {}) if container.security_context else {}
    if extra.get("allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges"]
    capabilities = extra.get("capabilities") or {}
    for cap in capabilities.get("drop") or []:
        args += ["--cap-drop", str(cap)]
    for cap in capabilities.get("add") or []:
        args += ["--cap-add", str(cap)]
    for mount in launch.mounts:
        args += ["--volume", f"{mount.source}:{mount.target}{':ro' if mount.read_only else ''}"]
    if launch.command:
        # A JSON list keeps arguments with spaces intact; it also drops the image's CMD, as
        # Kubernetes does when a pod sets command without args.
        args += ["--entrypoint", json.dumps(list(launch.command))]
    args.append(container.image)
    args += list(launch.args)
    return args
