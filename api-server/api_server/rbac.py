"""RBAC objects (``rbac.authorization.k8s.io/v1``) stored as kube-apiserver stores them.

Roles, ClusterRoles and their bindings are kept and served, checked as a cluster checks them
(rules with verbs and API groups, a binding's ``roleRef`` required and never changed, subjects of
a known kind with a name, a ServiceAccount subject of a ClusterRoleBinding with its namespace);
User and Group subjects get the default ``apiGroup``. Nothing here authorizes anything: the
embedded server has one token with full access (docs/apiserver.md). They are here so that deploy
manifests, which always carry their RBAC, apply to it as to a cluster.
"""

from __future__ import annotations

from typing import Any

from api_server.errors import Cause

__all__ = ["RBAC_GROUP", "binding_causes", "prepare_binding", "role_causes"]

Object = dict[str, Any]

RBAC_GROUP = "rbac.authorization.k8s.io"
_SUBJECT_KINDS = ("ServiceAccount", "User", "Group")


def role_causes(obj: Object, *, namespaced: bool) -> list[Cause]:
    rules = obj.get("rules")
    if rules is None:
        return []
    if not isinstance(rules, list):
        return [Cause("rules", "Invalid value: must be a list")]
    causes: list[Cause] = []
    for index, rule in enumerate(rules):
        where = f"rules[{index}]"
        if not isinstance(rule, dict):
            causes.append(Cause(where, "Invalid value: must be an object"))
            continue
        if not rule.get("verbs"):
            causes.append(
                Cause(
                    f"{where}.verbs",
                    "Required value: verbs must contain at least one value",
                    "FieldValueRequired",
                )
            )
        urls = rule.get("nonResourceURLs")
        if urls and namespaced:
            causes.append(
                Cause(
                    f"{where}.nonResourceURLs",
                    "Invalid value: namespaced rules cannot apply to non-resource URLs",
                )
            )
        if urls and (rule.get("resources") or rule.get("apiGroups")):
            causes.append(
                Cause(
                    f"{where}.nonResourceURLs",
                    "Invalid value: rules cannot apply to both regular resources and non-resource URLs",
                )
            )
        if not urls:
            if not rule.get("apiGroups"):
                causes.append(
                    Cause(
                        f"{where}.apiGroups",
                        "Required value: resource rules must supply at least one api group",
                        "FieldValueRequired",
                    )
                )
            if not rule.get("resources"):
                causes.append(
                    Cause(
                        f"{where}.resources",
                        "Required value: resource rules must supply at least one resource",
                        "FieldValueRequired",
                    )
                )
    return causes


def prepare_binding(obj: Object) -> None:
    """A User or Group subject's default ``apiGroup``, as kube-apiserver fills it in (a
    ServiceAccount's is ``""``, which the real server leaves out of what it stores)."""
    for subject in obj.get("subjects") or []:
        if isinstance(subject, dict) and not subject.get("apiGroup"):
            subject.pop("apiGroup", None)
            if subject.get("kind") in ("User", "Group"):
                subject["apiGroup"] = RBAC_GROUP


def _role_ref_causes(ref: Any, *, namespaced: bool) -> list[Cause]:
    if not isinstance(ref, dict):
        return [Cause("roleRef", "Required value", "FieldValueRequired")]
    causes: list[Cause] = []
    if ref.get("apiGroup") != RBAC_GROUP:
        causes.append(
            Cause(
                "roleRef.apiGroup",
                f'Unsupported value: "{ref.get("apiGroup", "")}": supported values: "{RBAC_GROUP}"',
                "FieldValueNotSupported",
            )
        )
    kinds = ("Role", "ClusterRole") if namespaced else ("ClusterRole",)
    if ref.get("kind") not in kinds:
        supported = ", ".join(f'"{k}"' for k in kinds)
        causes.append(
            Cause(
                "roleRef.kind",
                f'Unsupported value: "{ref.get("kind", "")}": supported values: {supported}',
                "FieldValueNotSupported",
            )
        )
    if not ref.get("name"):
        causes.append(Cause("roleRef.name", "Required value", "FieldValueRequired"))
    return causes


def binding_causes(obj: Object, old: Object | None, *, namespaced: bool) -> list[Cause]:
    """What kube-apiserver refuses in a RoleBinding (``namespaced``) or ClusterRoleBinding."""
    causes = _role_ref_causes(obj.get("roleRef"), namespaced=namespaced)
    if old is not None and obj.get("roleRef") != old.get("roleRef"):
        causes.append(Cause("roleRef", "Invalid value: cannot change roleRef"))
    subjects = obj.get("subjects") or []
    if not isinstance(subjects, list):
        return [*causes, Cause("subjects", "Invalid value: must be a list")]
    for index, subject in enumerate(subjects):
        where = f"subjects[{index}]"
        if not isinstance(subject, dict):
            causes.append(Cause(where, "Invalid value: must be an object"))
            continue
        kind = subject.get("kind")
        if kind not in _SUBJECT_KINDS:
            supported = ", ".join(f'"{k}"' for k in _SUBJECT_KINDS)
            causes.append(
                Cause(
                    f"{where}.kind",
                    f'Unsupported value: "{kind}": supported values: {supported}',
                    "FieldValueNotSupported",
                )
            )
        if not subject.get("name"):
            causes.append(Cause(f"{where}.name", "Required value", "FieldValueRequired"))
        if kind == "ServiceAccount" and not namespaced and not subject.get("namespace"):
            causes.append(Cause(f"{where}.namespace", "Required value", "FieldValueRequired"))
    return causes
