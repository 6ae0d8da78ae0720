"""Pod status in the shape Kubernetes gives it: phase, conditions and one status per container.

The supervisor keeps one ``ContainerStatus`` per container and hands them to ``pod_status``, which
derives the rest the way the kubelet does (``pkg/kubelet/status``): the phase from the containers'
states and the restart policy, ``ContainersReady``/``Ready`` from every container's ``ready``.
``to_kube()`` gives the dict a status subresource takes (camelCase, no empty fields).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ContainerState",
    "ContainerStatus",
    "PodCondition",
    "PodStatus",
    "Running",
    "Terminated",
    "Waiting",
    "pod_status",
    "rfc3339",
]


def rfc3339(moment: datetime) -> str:
    """Kubernetes' timestamp form: UTC, whole seconds, a ``Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Status(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    def to_kube(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class Waiting(_Status):
    reason: str
    message: str | None = None


class Running(_Status):
    started_at: str = Field(alias="startedAt")


class Terminated(_Status):
    exit_code: int = Field(alias="exitCode")
    reason: str
    message: str | None = None
    signal: int | None = None
    started_at: str | None = Field(None, alias="startedAt")
    finished_at: str = Field(alias="finishedAt")
    container_id: str | None = Field(None, alias="containerID")


class ContainerState(_Status):
    waiting: Waiting | None = None
    running: Running | None = None
    terminated: Terminated | None = None


class ContainerStatus(_Status):
    name: str
    image: str
    image_id: str = Field("", alias="imageID")
    container_id: str | None = Field(None, alias="containerID")
    state: ContainerState
    last_state: ContainerState = Field(ContainerState(), alias="lastState")
    ready: bool = False
    started: bool = False
    restart_count: int = Field(0, alias="restartCount")


class PodCondition(_Status):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str | None = None
    message: str | None = None
    last_transition_time: str = Field(alias="lastTransitionTime")


class PodIP(_Status):
    ip: str


class PodStatus(_Status):
    phase: Literal["Pending", "Running", "Succeeded", "Failed", "Unknown"]
    conditions: list[PodCondition] = []
    reason: str | None = None
    message: str | None = None
    host_ip: str | None = Field(None, alias="hostIP")
    pod_ip: str | None = Field(None, alias="podIP")
    pod_ips: list[PodIP] | None = Field(None, alias="podIPs")
    start_time: str | None = Field(None, alias="startTime")
    container_statuses: list[ContainerStatus] = Field([], alias="containerStatuses")

    def container(self, name: str) -> ContainerStatus:
        """The status of one container by name (``KeyError`` when the pod has none of that name)."""
        for status in self.container_statuses:
            if status.name == name:
                return status
        raise KeyError(name)

    def condition(self, kind: str) -> PodCondition:
        for condition in self.conditions:
            if condition.type == kind:
                return condition
        raise KeyError(kind)


Phase = Literal["Pending", "Running", "Succeeded", "Failed", "Unknown"]


def _phase(containers: list[ContainerStatus], restart_policy: str, *, done: bool) -> Phase:
    # kubelet's getPhase: Pending until every container has started once; Succeeded/Failed only
    # when every container has terminated and none will be restarted.
    if any(
        c.state.running is None and c.state.terminated is None and not c.last_state.terminated
        for c in containers
    ):
        return "Pending"
    if any(c.state.running is not None for c in containers) or not done:
        return "Running"
    if all(c.state.terminated is not None and c.state.terminated.exit_code == 0 for c in containers):
        return "Succeeded"
    return "Failed"


def pod_status(
    containers: list[ContainerStatus],
    *,
    restart_policy: str,
    done: bool,
    previous: PodStatus | None,
    now: datetime,
    host_ip: str | None,
    pod_ip: str | None,
    start_time: datetime | None,
) -> PodStatus:
    """The pod's status from its containers'; ``done`` says no container will be started again.

    Conditions keep their ``lastTransitionTime`` from ``previous`` while their status is unchanged.
    """
    phase = _phase(containers, restart_policy, done=done)
    not_ready = [c.name for c in containers if not c.ready]
    ready_reason = None if not not_ready else ("PodCompleted" if done else "ContainersNotReady")
    ready_message = (
        f"containers with unready status: [{' '.join(not_ready)}]" if not_ready and not done else None
    )
    wanted = [
        ("PodScheduled", True, None, None),
        ("Initialized", True, None, None),
        ("ContainersReady", not not_ready, ready_reason, ready_message),
        ("Ready", not not_ready, ready_reason, ready_message),
    ]
    conditions = []
    for kind, ok, reason, message in wanted:
        status: Literal["True", "False"] = "True" if ok else "False"
        since = rfc3339(now)
        if previous is not None:
            try:
                before = previous.condition(kind)
            except KeyError:
                pass
            else:
                if before.status == status:
                    since = before.last_transition_time
        conditions.append(
            PodCondition(type=kind, status=status, reason=reason, message=message, last_transition_time=since)
        )
    return PodStatus(
        phase=phase,
        conditions=conditions,
        host_ip=host_ip,
        pod_ip=pod_ip,
        pod_ips=[PodIP(ip=pod_ip)] if pod_ip else None,
        start_time=rfc3339(start_time) if start_time else None,
        container_statuses=containers,
    )


def rejected_status(reason: str, message: str, *, now: datetime, host_ip: str | None) -> PodStatus:
    """A pod the node will not run: ``Failed`` with the reason, as the kubelet reports admission failures."""
    return PodStatus(
        phase="Failed",
        reason=reason,
        message=message,
        host_ip=host_ip,
        conditions=[PodCondition(type="PodScheduled", status="True", last_transition_time=rfc3339(now))],
    )
