"""A container's environment and command line as Kubernetes builds them.

``env`` entries in order (each may use ``$(NAME)`` of earlier ones), ``envFrom`` first; values
from ConfigMaps, Secrets and the pod's own fields (``fieldRef``); ``$(NAME)`` expanded in
``command`` and ``args`` (``$$`` for a literal ``$``, unknown names left as written). A reference
that cannot be resolved and is not ``optional`` is a ``CreateContainerConfigError``, as in the
kubelet, so the pod waits for it rather than starting with an empty value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from node_agent.pods.errors import ContainerConfigFailed
from node_agent.pods.spec import BoundPod, Container, KeySelector

__all__ = ["expand", "resolve_env"]

_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
_LABEL = re.compile(r"metadata\.(labels|annotations)\['([^']+)'\]")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _REFERENCE.sub(one, text)


def _field(bound: BoundPod, path: str, node: str, host_ip: str | None, pod_ip: str | None) -> str:
    meta, spec = bound.pod.metadata, bound.pod.spec
    fields = {
        "metadata.name": meta.name,
        "metadata.namespace": meta.namespace,
        "metadata.uid": meta.uid,
        "spec.nodeName": spec.node_name or node,
        "spec.serviceAccountName": spec.service_account_name,
        "status.hostIP": host_ip or "",
        "status.podIP": pod_ip or "",
    }
    if path in fields:
        return fields[path]
    if match := _LABEL.fullmatch(path):
        source = meta.labels if match.group(1) == "labels" else meta.annotations
        return source.get(match.group(2), "")
    raise ContainerConfigFailed(f"fieldRef {path!r} is not supported")


def _key(bound: BoundPod, selector: KeySelector, kind: str) -> str | None:
    source = bound.config_maps.get(selector.name) if kind == "configmap" else bound.secrets.get(selector.name)
    if source is None:
        if selector.optional:
            return None
        raise ContainerConfigFailed(f'{kind} "{selector.name}" not found')
    value = source.items().get(selector.key)
    if value is None and not selector.optional:
        raise ContainerConfigFailed(f"couldn't find key {selector.key} in {kind} {selector.name}")
    return None if value is None else value.decode(errors="replace")


def resolve_env(
    bound: BoundPod, container: Container, *, node: str, host_ip: str | None, pod_ip: str | None
) -> dict[str, str]:
    """The container's environment, in Kubernetes' order of precedence."""
    env: dict[str, str] = {}
    for source in container.env_from:
        ref, kind = (
            (source.config_map_ref, "configmap") if source.config_map_ref else (source.secret_ref, "secret")
        )
        if ref is None:
            continue
        found = bound.config_maps.get(ref.name) if kind == "configmap" else bound.secrets.get(ref.name)
        if found is None:
            if ref.optional:
                continue
            raise ContainerConfigFailed(f'{kind} "{ref.name}" not found')
        for key, content in found.items().items():
            env[source.prefix + key] = content.decode(errors="replace")
    for var in container.env:
        value: str | None
        origin = var.value_from
        if origin is None:
            value = expand(var.value or "", env)
        elif origin.config_map_key_ref is not None:
            value = _key(bound, origin.config_map_key_ref, "configmap")
        elif origin.secret_key_ref is not None:
            value = _key(bound, origin.secret_key_ref, "secret")
        elif origin.field_ref is not None:
            value = _field(bound, origin.field_ref.field_path, node, host_ip, pod_ip)
        else:
            raise ContainerConfigFailed(f"env {var.name}: this valueFrom source is not supported")
        if value is not None:
            env[var.name] = value
    return env
