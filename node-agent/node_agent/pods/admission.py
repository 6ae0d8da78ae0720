"""What a node can honour of a pod spec, checked before anything runs.

A pod that asks for something the runtime would silently skip (a volume type it cannot mount, a
limit it cannot enforce, a security setting it ignores) is rejected whole, with one reason per
field, instead of running half of it. ``common_reasons`` holds what neither runtime supports;
each runtime adds its own in ``unsupported``. docs/pods.md lists the result as a table.
"""

from __future__ import annotations

from node_agent.pods.spec import Container, Pod, Probe, SecurityContext

__all__ = ["SERVICE_ACCOUNT_MOUNT", "common_reasons", "container_context", "set_fields", "volume_kinds"]

#: Where Kubernetes mounts a pod's API token. A gateway gives pods no API credentials, so this one
#: projected volume (added to every pod by a real API server) is skipped instead of refused.
SERVICE_ACCOUNT_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"

_FIELD_REFS = {
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.podIP",
}
#: Container securityContext fields beyond ``SecurityContext``'s typed ones that some runtime honours.
_CONTAINER_CONTEXT = {"allowPrivilegeEscalation", "capabilities"}
_SUPPORTED_VOLUMES = {"emptyDir", "hostPath", "configMap", "secret"}


def set_fields(extra: dict[str, object] | None) -> list[str]:
    """Names of unknown fields that carry a value (an API server's empty defaults do not count)."""
    return sorted(key for key, value in (extra or {}).items() if value not in (None, {}, [], "", False))


def volume_kinds(pod: Pod) -> dict[str, str]:
    """Each volume's source type by volume name."""
    return {volume.name: volume.kind() for volume in pod.spec.volumes}


def is_service_account_mount(pod: Pod, volume: str, path: str) -> bool:
    return volume_kinds(pod).get(volume) == "projected" and path == SERVICE_ACCOUNT_MOUNT


def container_context(pod: Pod, container: Container) -> SecurityContext:
    """The container's security settings over the pod's, as Kubernetes merges them."""
    pod_level = pod.spec.security_context or SecurityContext()
    own = container.security_context or SecurityContext()
    merged = pod_level.model_dump(exclude_none=True) | own.model_dump(exclude_none=True)
    return SecurityContext.model_validate(merged)


def _probe_reasons(where: str, probe: Probe | None) -> list[str]:
    if probe is None:
        return []
    handlers = [h for h in (probe.exec, probe.http_get, probe.tcp_socket) if h is not None]
    if probe.grpc is not None:
        return [f"{where}: grpc probes are not supported (use exec, httpGet or tcpSocket)"]
    if len(handlers) != 1:
        return [f"{where}: a probe needs exactly one of exec, httpGet, tcpSocket"]
    if probe.exec is not None and not probe.exec.command:
        return [f"{where}: an exec probe needs a command"]
    return []


def _container_reasons(pod: Pod, container: Container) -> list[str]:
    where = f"container {container.name}"
    reasons: list[str] = []
    for kind, probe in (
        ("livenessProbe", container.liveness_probe),
        ("readinessProbe", container.readiness_probe),
        ("startupProbe", container.startup_probe),
    ):
        reasons += _probe_reasons(f"{where} {kind}", probe)
    for var in container.env:
        origin = var.value_from
        if origin is None:
            continue
        if origin.resource_field_ref is not None:
            reasons.append(f"{where} env {var.name}: resourceFieldRef is not supported")
        elif origin.field_ref is not None and origin.field_ref.field_path not in _FIELD_REFS:
            path = origin.field_ref.field_path
            if not path.startswith(("metadata.labels['", "metadata.annotations['")):
                reasons.append(f"{where} env {var.name}: fieldRef {path} is not supported")
    volumes = volume_kinds(pod)
    for mount in container.volume_mounts:
        if mount.name not in volumes:
            reasons.append(f"{where}: volumeMount {mount.name} names no volume of the pod")
    context = container.security_context
    if context is not None:
        extra = [f for f in set_fields(context.model_extra) if f not in _CONTAINER_CONTEXT]
        if extra:
            reasons.append(f"{where}: securityContext {', '.join(extra)} not supported")
    if context is not None and context.run_as_non_root and not container_context(pod, container).run_as_user:
        reasons.append(f"{where}: runAsNonRoot needs an explicit non-zero runAsUser on this node")
    return reasons


def common_reasons(pod: Pod) -> list[str]:
    """What no runtime of this node honours."""
    spec = pod.spec
    reasons: list[str] = []
    if spec.init_containers:
        reasons.append("initContainers are not supported")
    if spec.readiness_gates:
        reasons.append("readinessGates are not supported")
    if spec.security_context is not None:
        extra = set_fields(spec.security_context.model_extra)
        if extra:
            reasons.append(f"pod securityContext {', '.join(extra)} not supported")
    for volume in spec.volumes:
        kind = volume.kind()
        mounted = [
            mount.mount_path
            for container in spec.containers
            for mount in container.volume_mounts
            if mount.name == volume.name
        ]
        if kind == "projected" and all(path == SERVICE_ACCOUNT_MOUNT for path in mounted):
            continue
        if kind not in _SUPPORTED_VOLUMES:
            reasons.append(
                f"volume {volume.name}: type {kind} is not supported"
                " (emptyDir, hostPath, configMap and secret are)"
            )
        elif volume.empty_dir is not None and volume.empty_dir.medium not in ("", "Disk"):
            reasons.append(
                f"volume {volume.name}: emptyDir medium {volume.empty_dir.medium} is not supported"
            )
    names = [c.name for c in spec.containers]
    if len(set(names)) != len(names):
        reasons.append("container names must be unique")
    for container in spec.containers:
        reasons += _container_reasons(pod, container)
    return reasons
