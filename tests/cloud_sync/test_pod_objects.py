"""What a node is sent for a pod, its revision, and the status patch written back: pure, no sockets."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from cloud_sync.binder import choose_node, wants_binding
from cloud_sync.pod_objects import assignment, references, status_patch

POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "app",
        "namespace": "factory",
        "uid": "u-1",
        "resourceVersion": "7",
        "managedFields": [{"manager": "kubectl"}],
    },
    "spec": {
        "nodeName": "edge-1",
        "containers": [
            {
                "name": "app",
                "env": [
                    {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "env-map", "key": "a"}}},
                    {"name": "B", "valueFrom": {"secretKeyRef": {"name": "env-secret", "key": "b"}}},
                ],
                "envFrom": [{"configMapRef": {"name": "all-map"}}, {"secretRef": {"name": "all-secret"}}],
            }
        ],
        "initContainers": [{"name": "init", "envFrom": [{"configMapRef": {"name": "init-map"}}]}],
        "volumes": [
            {"name": "v1", "configMap": {"name": "vol-map"}},
            {"name": "v2", "secret": {"secretName": "vol-secret"}},
            {
                "name": "v3",
                "projected": {
                    "sources": [{"configMap": {"name": "proj-map"}}, {"secret": {"name": "proj-secret"}}]
                },
            },
        ],
    },
    "status": {"phase": "Running"},
}


def _obj(kind: str, name: str, version: str, **data: str) -> dict[str, Any]:
    meta = {"name": name, "namespace": "factory", "resourceVersion": version}
    return {"apiVersion": "v1", "kind": kind, "metadata": meta, "data": data}


def test_every_config_map_and_secret_a_pod_names_is_found() -> None:
    maps, secrets = references(POD)
    assert maps == {"env-map", "all-map", "init-map", "vol-map", "proj-map"}
    assert secrets == {"env-secret", "all-secret", "vol-secret", "proj-secret"}


def test_a_node_gets_the_pod_without_status_or_server_fields_and_the_objects_that_exist() -> None:
    maps = {
        "factory/env-map": _obj("ConfigMap", "env-map", "3", a="1"),
        "other/env-map": _obj("ConfigMap", "x", "1"),
    }
    secrets = {"factory/vol-secret": _obj("Secret", "vol-secret", "4", b="Yg==")}
    sent = assignment(POD, maps, secrets)
    assert "status" not in sent.pod
    assert "managedFields" not in sent.pod["metadata"] and "resourceVersion" not in sent.pod["metadata"]
    assert set(sent.config_maps) == {"env-map"} and set(sent.secrets) == {"vol-secret"}
    assert sent.config_maps["env-map"]["data"] == {"a": "1"}
    assert sent.key == "factory/app" and sent.uid == "u-1"


def test_the_revision_ignores_status_writes_and_follows_the_pod_and_its_objects() -> None:
    maps = {"factory/env-map": _obj("ConfigMap", "env-map", "3", a="1")}
    first = assignment(POD, maps, {}).revision
    written = copy.deepcopy(POD)
    written["status"] = {"phase": "Failed"}
    written["metadata"]["resourceVersion"] = "99"
    assert assignment(written, maps, {}).revision == first
    changed = copy.deepcopy(POD)
    changed["metadata"]["labels"] = {"tier": "edge"}
    assert assignment(changed, maps, {}).revision != first
    new_map = {"factory/env-map": _obj("ConfigMap", "env-map", "4", a="2")}
    assert assignment(POD, new_map, {}).revision != first
    assert assignment(POD, {}, {}).revision != first  # the ConfigMap went away


def test_the_status_patch_replaces_the_nodes_fields_removes_stale_ones_and_keeps_other_conditions() -> None:
    current = {
        "phase": "Pending",
        "qosClass": "BestEffort",
        "message": "old news",
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"},
            {"type": "example.com/gate", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"},
        ],
    }
    reported = {
        "phase": "Running",
        "hostIP": "10.0.0.2",
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-02-02T00:00:00Z"},
            {"type": "Ready", "status": "True", "lastTransitionTime": "2026-02-02T00:00:00Z"},
        ],
    }
    patch = status_patch(current, reported)
    assert patch is not None
    assert patch["phase"] == "Running" and patch["hostIP"] == "10.0.0.2"
    assert patch["message"] is None  # no longer reported: removed
    assert "qosClass" not in patch  # not the node's
    types = {c["type"]: c for c in patch["conditions"]}
    assert types["PodScheduled"]["lastTransitionTime"] == "2026-01-01T00:00:00Z"  # unchanged status
    assert "example.com/gate" in types
    applied = {**current, **{k: v for k, v in patch.items() if v is not None}}
    applied.pop("message")
    assert status_patch(applied, reported) is None  # once written, nothing more to write


NODES = {
    "edge-1": {"metadata": {"labels": {"site": "a"}}, "status": {"allocatable": {"pods": "2"}}},
    "edge-2": {
        "metadata": {"labels": {"site": "a"}},
        "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]},
    },
    "edge-3": {"metadata": {"labels": {"site": "b"}}},
    "edge-4": {"metadata": {"labels": {"site": "a"}}},
}


def _pending(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p", "uid": "u"}, "spec": {"containers": [{"name": "c"}], **spec}}


@pytest.mark.parametrize(
    ("spec", "ready", "load", "chosen", "why"),
    [
        ({"nodeSelector": {"site": "a"}}, {"edge-1", "edge-2", "edge-3", "edge-4"}, {}, "edge-1", ""),
        ({"nodeSelector": {"site": "a"}}, {"edge-1", "edge-4"}, {"edge-1": 1}, "edge-4", ""),
        ({"nodeSelector": {"site": "a"}}, {"edge-1"}, {"edge-1": 2}, None, "1 Too many pods"),
        ({"nodeSelector": {"site": "c"}}, set(NODES), {}, None, "4 node(s) didn't match"),
        ({"nodeSelector": {"site": "a"}}, {"edge-2"}, {}, None, "1 node(s) had untolerated taint"),
        (
            {"nodeSelector": {"site": "a"}, "tolerations": [{"key": "k", "operator": "Exists"}]},
            {"edge-2"},
            {},
            "edge-2",
            "",
        ),
        ({"nodeSelector": {"site": "a"}}, set(), {}, None, "4 node(s) were not ready"),
        (
            {
                "nodeSelector": {"site": "a"},
                "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {}}},
            },
            set(NODES),
            {},
            None,
            "does not evaluate nodeAffinity",
        ),
    ],
)
def test_the_binder_picks_a_ready_matching_tolerated_node_with_room_and_says_why_not(
    spec: dict[str, Any], ready: set[str], load: dict[str, int], chosen: str | None, why: str
) -> None:
    node, reason = choose_node(_pending(**spec), NODES, ready, lambda n: load.get(n, 0))
    assert node == chosen
    assert why in reason


@pytest.mark.parametrize(
    ("pod", "left_alone"),
    [
        (_pending(nodeSelector={"site": "a"}), False),
        (_pending(), True),
        (_pending(nodeSelector={"site": "a"}, schedulerName="my-scheduler"), True),
        (_pending(nodeSelector={"site": "a"}, nodeName="edge-9"), True),
        ({**_pending(nodeSelector={"site": "a"}), "status": {"phase": "Failed"}}, True),
    ],
)
def test_the_binder_leaves_alone_pods_that_select_nothing_or_are_someone_elses(
    pod: dict[str, Any], left_alone: bool
) -> None:
    assert (wants_binding(pod) is not None) == left_alone
