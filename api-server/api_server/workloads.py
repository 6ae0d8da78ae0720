"""Deployments (``apps/v1``) as kube-apiserver stores them: defaults, and what it refuses.

No controller runs here: a Deployment makes no ReplicaSets and no Pods, its status stays as the
server made it (``{}``: ``kubectl get deploy`` shows ``0/1``). It is stored and served so that
manifests written for a cluster apply unchanged and are checked the way a cluster checks them: a
selector is required, must select the pod template's labels and cannot change; the template needs
containers with names and images and restarts ``Always``. The defaults are the ones
``kubectl get deploy -o yaml`` shows on a real cluster (``replicas: 1``, a 25 % rolling update, the
pod template's ``restartPolicy``, ``dnsPolicy``, ``imagePullPolicy``...).
"""

from __future__ import annotations

from typing import Any

from api_server.errors import Cause

__all__ = ["deployment_causes", "label_selector_matches", "prepare_deployment"]

Object = dict[str, Any]


def _dict(parent: Object, key: str) -> Object:
    value = parent.get(key)
    if not isinstance(value, dict):
        value = parent[key] = {}
    return value


def _default_container(container: Object) -> None:
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    image = str(container.get("image", ""))
    tagged = ":" in image.rsplit("/", 1)[-1] or "@" in image
    latest = image.endswith(":latest") or not tagged
    container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
    for port in container.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")


def _default_pod_spec(spec: Object) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    for key in ("containers", "initContainers"):
        for container in spec.get(key) or []:
            if isinstance(container, dict):
                _default_container(container)


def prepare_deployment(obj: Object, *, new: bool) -> None:
    """Defaults of every write; a new Deployment's status is empty (no controller fills it)."""
    spec = _dict(obj, "spec")
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    strategy = _dict(spec, "strategy")
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = _dict(strategy, "rollingUpdate")
        rolling.setdefault("maxUnavailable", "25%")
        rolling.setdefault("maxSurge", "25%")
    template = _dict(spec, "template")
    _default_pod_spec(_dict(template, "spec"))
    if new:
        obj["status"] = {}


def label_selector_matches(selector: Object, labels: dict[str, Any]) -> bool:
    """Whether a ``metav1.LabelSelector`` (``matchLabels``, ``matchExpressions``) selects ``labels``."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key"), expression.get("operator")
        values = expression.get("values") or []
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def _selector_causes(spec: Object, labels: Any) -> list[Cause]:
    selector = spec.get("selector")
    if not isinstance(selector, dict):
        return [Cause("spec.selector", "Required value", "FieldValueRequired")]
    if not selector.get("matchLabels") and not selector.get("matchExpressions"):
        return [Cause("spec.selector", "Invalid value: empty selector is invalid for deployment")]
    labels = labels if isinstance(labels, dict) else {}
    if not label_selector_matches(selector, labels):
        shown = ", ".join(f'"{k}":"{v}"' for k, v in sorted(labels.items()))
        return [
            Cause(
                "spec.template.metadata.labels",
                f"Invalid value: map[string]string{{{shown}}}: `selector` does not match template `labels`",
            )
        ]
    return []


def _template_causes(template: Object) -> list[Cause]:
    pod = template.get("spec") if isinstance(template.get("spec"), dict) else {}
    assert isinstance(pod, dict)
    causes: list[Cause] = []
    if pod.get("restartPolicy", "Always") != "Always":
        causes.append(
            Cause(
                "spec.template.spec.restartPolicy",
                f'Unsupported value: "{pod["restartPolicy"]}": supported values: "Always"',
                "FieldValueNotSupported",
            )
        )
    containers = pod.get("containers")
    if not isinstance(containers, list) or not containers:
        return [*causes, Cause("spec.template.spec.containers", "Required value", "FieldValueRequired")]
    for index, container in enumerate(containers):
        where = f"spec.template.spec.containers[{index}]"
        if not isinstance(container, dict):
            causes.append(Cause(where, "Invalid value: must be an object"))
            continue
        for key in ("name", "image"):
            if not container.get(key):
                causes.append(Cause(f"{where}.{key}", "Required value", "FieldValueRequired"))
    return causes


def deployment_causes(obj: Object, old: Object | None) -> list[Cause]:
    """What kube-apiserver would refuse in this Deployment (``old``: the stored one, on an update)."""
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    assert isinstance(spec, dict)
    template = spec.get("template") if isinstance(spec.get("template"), dict) else {}
    assert isinstance(template, dict)
    causes: list[Cause] = []
    replicas = spec.get("replicas")
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        causes.append(
            Cause("spec.replicas", f"Invalid value: {replicas}: must be greater than or equal to 0")
        )
    causes += _selector_causes(spec, (template.get("metadata") or {}).get("labels"))
    causes += _template_causes(template)
    if old is not None and spec.get("selector") != (old.get("spec") or {}).get("selector"):
        causes.append(Cause("spec.selector", "Invalid value: field is immutable"))
    return causes
