"""The v1 Pod, ConfigMap and Secret fields the pod runtime acts on, as pydantic models.

A Pod arrives exactly as the Kubernetes API holds it (defaults filled in by a real API server,
fields from newer Kubernetes versions, a ``status`` of its own). Only the fields acted on are
typed; everything else is kept (``extra="allow"``) so that a pod stored on the gateway and sent
back is the pod that came in. Whether the runtime can honour a field is decided later, by
``node_agent.pods.admission``, which names each field it cannot.
"""

from __future__ import annotations

import base64
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "BoundPod",
    "ConfigMap",
    "Container",
    "ContainerPort",
    "EnvFromSource",
    "EnvVar",
    "ExecAction",
    "HTTPGetAction",
    "HostPathSource",
    "KeyToPath",
    "ObjectMeta",
    "Pod",
    "PodSpec",
    "Probe",
    "Secret",
    "SecurityContext",
    "TCPSocketAction",
    "Volume",
    "VolumeMount",
]


class _Kube(BaseModel):
    """A Kubernetes-shaped object: unknown fields kept, never rejected."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)


class ObjectMeta(_Kube):
    name: str = Field(min_length=1, max_length=253)
    namespace: str = "default"
    uid: str = ""
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}


class KeySelector(_Kube):
    name: str = ""
    key: str
    optional: bool = False


class FieldSelector(_Kube):
    field_path: str = Field(alias="fieldPath")


class EnvVarSource(_Kube):
    config_map_key_ref: KeySelector | None = Field(None, alias="configMapKeyRef")
    secret_key_ref: KeySelector | None = Field(None, alias="secretKeyRef")
    field_ref: FieldSelector | None = Field(None, alias="fieldRef")
    resource_field_ref: dict[str, Any] | None = Field(None, alias="resourceFieldRef")


class EnvVar(_Kube):
    name: str = Field(min_length=1)
    value: str | None = None
    value_from: EnvVarSource | None = Field(None, alias="valueFrom")


class SourceRef(_Kube):
    name: str = ""
    optional: bool = False


class EnvFromSource(_Kube):
    prefix: str = ""
    config_map_ref: SourceRef | None = Field(None, alias="configMapRef")
    secret_ref: SourceRef | None = Field(None, alias="secretRef")


class ExecAction(_Kube):
    command: list[str] = []


class HTTPGetAction(_Kube):
    path: str = "/"
    port: int | str
    host: str = ""
    scheme: Literal["HTTP", "HTTPS"] = "HTTP"
    http_headers: list[dict[str, str]] = Field([], alias="httpHeaders")


class TCPSocketAction(_Kube):
    port: int | str
    host: str = ""


class Probe(_Kube):
    exec: ExecAction | None = None
    http_get: HTTPGetAction | None = Field(None, alias="httpGet")
    tcp_socket: TCPSocketAction | None = Field(None, alias="tcpSocket")
    grpc: dict[str, Any] | None = None
    initial_delay_seconds: int = Field(0, alias="initialDelaySeconds", ge=0)
    period_seconds: int = Field(10, alias="periodSeconds", ge=1)
    timeout_seconds: int = Field(1, alias="timeoutSeconds", ge=1)
    success_threshold: int = Field(1, alias="successThreshold", ge=1)
    failure_threshold: int = Field(3, alias="failureThreshold", ge=1)


class ContainerPort(_Kube):
    container_port: int = Field(alias="containerPort", ge=1, le=65535)
    name: str = ""
    protocol: str = "TCP"


class VolumeMount(_Kube):
    name: str
    mount_path: str = Field(alias="mountPath", min_length=1)
    read_only: bool = Field(False, alias="readOnly")
    sub_path: str = Field("", alias="subPath")


class SecurityContext(_Kube):
    """Container or pod security settings; which ones a runtime honours is admission's business."""

    privileged: bool | None = None
    run_as_user: int | None = Field(None, alias="runAsUser")
    run_as_group: int | None = Field(None, alias="runAsGroup")
    run_as_non_root: bool | None = Field(None, alias="runAsNonRoot")
    read_only_root_filesystem: bool | None = Field(None, alias="readOnlyRootFilesystem")


class Resources(_Kube):
    limits: dict[str, str | int | float] = {}
    requests: dict[str, str | int | float] = {}


class Container(_Kube):
    name: str = Field(min_length=1, max_length=63)
    image: str = ""
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = Field(
        None, alias="imagePullPolicy"
    )
    command: list[str] = []
    args: list[str] = []
    working_dir: str = Field("", alias="workingDir")
    env: list[EnvVar] = []
    env_from: list[EnvFromSource] = Field([], alias="envFrom")
    ports: list[ContainerPort] = []
    resources: Resources = Resources()
    volume_mounts: list[VolumeMount] = Field([], alias="volumeMounts")
    liveness_probe: Probe | None = Field(None, alias="livenessProbe")
    readiness_probe: Probe | None = Field(None, alias="readinessProbe")
    startup_probe: Probe | None = Field(None, alias="startupProbe")
    security_context: SecurityContext | None = Field(None, alias="securityContext")

    def pull_policy(self) -> str:
        """Kubernetes' default: ``Always`` for ``:latest`` or an untagged image, else ``IfNotPresent``."""
        if self.image_pull_policy:
            return self.image_pull_policy
        last = self.image.rsplit("/", 1)[-1]
        if "@" in last or (":" in last and not last.endswith(":latest")):
            return "IfNotPresent"
        return "Always"


class KeyToPath(_Kube):
    key: str
    path: str
    mode: int | None = None


class ConfigMapVolumeSource(_Kube):
    name: str = ""
    items: list[KeyToPath] = []
    default_mode: int = Field(0o644, alias="defaultMode")
    optional: bool = False


class SecretVolumeSource(_Kube):
    secret_name: str = Field("", alias="secretName")
    items: list[KeyToPath] = []
    default_mode: int = Field(0o644, alias="defaultMode")
    optional: bool = False


class EmptyDirSource(_Kube):
    medium: str = ""
    size_limit: str | None = Field(None, alias="sizeLimit")


class HostPathSource(_Kube):
    path: str
    type: str = ""


class Volume(_Kube):
    name: str
    empty_dir: EmptyDirSource | None = Field(None, alias="emptyDir")
    host_path: HostPathSource | None = Field(None, alias="hostPath")
    config_map: ConfigMapVolumeSource | None = Field(None, alias="configMap")
    secret: SecretVolumeSource | None = None

    def kind(self) -> str:
        """The volume's source type as Kubernetes names it (``emptyDir``, ``projected``…)."""
        extra = self.model_extra or {}
        for key in ("empty_dir", "host_path", "config_map", "secret"):
            if getattr(self, key) is not None:
                field = type(self).model_fields[key]
                return field.alias or key
        return next(iter(extra), "unknown")


class PodSpec(_Kube):
    node_name: str = Field("", alias="nodeName")
    containers: list[Container] = Field(min_length=1)
    init_containers: list[Container] = Field([], alias="initContainers")
    volumes: list[Volume] = []
    restart_policy: Literal["Always", "OnFailure", "Never"] = Field("Always", alias="restartPolicy")
    termination_grace_period_seconds: int = Field(30, alias="terminationGracePeriodSeconds", ge=0)
    host_network: bool = Field(False, alias="hostNetwork")
    host_pid: bool = Field(False, alias="hostPID")
    host_ipc: bool = Field(False, alias="hostIPC")
    security_context: SecurityContext | None = Field(None, alias="securityContext")
    readiness_gates: list[dict[str, Any]] = Field([], alias="readinessGates")
    service_account_name: str = Field("", alias="serviceAccountName")


class Pod(_Kube):
    api_version: str = Field("v1", alias="apiVersion")
    kind: str = "Pod"
    metadata: ObjectMeta
    spec: PodSpec

    @property
    def key(self) -> str:
        """``namespace/name``: how the pod is known on this node."""
        return f"{self.metadata.namespace}/{self.metadata.name}"


class ConfigMap(_Kube):
    metadata: ObjectMeta
    data: dict[str, str] = {}
    binary_data: dict[str, str] = Field({}, alias="binaryData")

    def items(self) -> dict[str, bytes]:
        """Every key with its content as bytes (``binaryData`` is base64, as the API holds it)."""
        found = {key: value.encode() for key, value in self.data.items()}
        found.update({key: base64.b64decode(value) for key, value in self.binary_data.items()})
        return found


class Secret(_Kube):
    metadata: ObjectMeta
    data: dict[str, str] = {}
    string_data: dict[str, str] = Field({}, alias="stringData")

    def items(self) -> dict[str, bytes]:
        """Every key with its content as bytes (``data`` is base64, ``stringData`` plain text)."""
        found = {key: base64.b64decode(value) for key, value in self.data.items()}
        found.update({key: value.encode() for key, value in self.string_data.items()})
        return found


class BoundPod(_Kube):
    """A pod bound to this node with the ConfigMaps and Secrets it names, as the caller resolved them.

    This is the unit the node stores and restarts from offline: a pod whose configMap volume could
    not be read from the cloud after a restart would otherwise not start.
    """

    pod: Pod
    config_maps: dict[str, ConfigMap] = Field({}, alias="configMaps")
    secrets: dict[str, Secret] = {}
