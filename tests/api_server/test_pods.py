"""Pods on the API server as a scheduler and kubectl use them: the ``binding`` subresource, graceful
deletion of a pod on a node, ``pods/log`` without a log provider, and the STATUS column."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.apiserver import ApiServerThread, Http, Kubectl, make_kubectl

PODS = "/api/v1/namespaces/default/pods"


@pytest.fixture(scope="module")
def http(module_apiserver: ApiServerThread) -> Iterator[Http]:
    yield Http.to(module_apiserver)


@pytest.fixture(scope="module")
def kubectl(module_apiserver: ApiServerThread, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return make_kubectl(module_apiserver, tmp_path_factory.mktemp("kube-cache"))


def pod(name: str, **spec: Any) -> dict[str, Any]:
    body = {"containers": [{"name": "app", "image": "busybox"}], **spec}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": body}


def binding(name: str, node: str, uid: str | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if uid is not None:
        metadata["uid"] = uid
    return {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": metadata,
        "target": {"kind": "Node", "name": node},
    }


def test_a_binding_assigns_a_pod_to_a_node_once(http: Http) -> None:
    status, _, body = http.request("POST", PODS, pod("bind-me"))
    assert status == 201
    uid = json.loads(body)["metadata"]["uid"]
    status, _, body = http.request(
        "POST", f"{PODS}/bind-me/binding", binding("bind-me", "edge-1", "wrong-uid")
    )
    assert status == 409 and "Precondition failed" in json.loads(body)["message"]
    status, _, body = http.request("POST", f"{PODS}/bind-me/binding", binding("bind-me", "edge-1", uid))
    assert status == 201 and json.loads(body)["status"] == "Success"
    bound = json.loads(http.request("GET", f"{PODS}/bind-me")[2])
    assert bound["spec"]["nodeName"] == "edge-1"
    scheduled = [c for c in bound["status"]["conditions"] if c["type"] == "PodScheduled"]
    assert scheduled and scheduled[0]["status"] == "True"
    status, _, body = http.request("POST", f"{PODS}/bind-me/binding", binding("bind-me", "edge-2"))
    assert status == 409 and 'already assigned to node "edge-1"' in json.loads(body)["message"]
    status, _, body = http.request("POST", f"{PODS}/bind-me/binding", {"kind": "Binding", "metadata": {}})
    assert status == 422 and "target.name" in json.loads(body)["message"]
    status, _, _ = http.request("POST", f"{PODS}/nobody/binding", binding("nobody", "edge-1"))
    assert status == 404


def test_discovery_lists_the_pods_binding_and_log_subresources_with_their_verbs(http: Http) -> None:
    resources = {r["name"]: r for r in json.loads(http.request("GET", "/api/v1")[2])["resources"]}
    assert resources["pods/binding"]["verbs"] == ["create"]
    assert resources["pods/log"]["verbs"] == ["get"]
    assert resources["pods/status"]["verbs"] == ["get", "patch", "update"]


def test_a_pod_on_a_node_is_deleted_gracefully_and_an_unbound_one_at_once(http: Http) -> None:
    http.request("POST", PODS, pod("on-node", nodeName="edge-1", terminationGracePeriodSeconds=20))
    http.request("POST", PODS, pod("unbound"))
    status, _, _ = http.request("DELETE", f"{PODS}/on-node")
    assert status == 200
    terminating = json.loads(http.request("GET", f"{PODS}/on-node")[2])
    assert terminating["metadata"]["deletionTimestamp"]
    assert terminating["metadata"]["deletionGracePeriodSeconds"] == 20
    # The node's status writes go on while it stops the pod.
    http.request(
        "PATCH",
        f"{PODS}/on-node/status",
        {"status": {"phase": "Running"}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert http.request("GET", f"{PODS}/on-node")[0] == 200
    http.request("DELETE", f"{PODS}/on-node", {"gracePeriodSeconds": 5})
    shorter = json.loads(http.request("GET", f"{PODS}/on-node")[2])
    assert shorter["metadata"]["deletionGracePeriodSeconds"] == 5
    status, _, _ = http.request("DELETE", f"{PODS}/on-node", {"gracePeriodSeconds": 0})
    assert status == 200
    assert http.request("GET", f"{PODS}/on-node")[0] == 404
    http.request("DELETE", f"{PODS}/unbound")
    assert http.request("GET", f"{PODS}/unbound")[0] == 404


def test_kubectl_logs_without_a_log_provider_says_where_logs_come_from(kubectl: Kubectl, http: Http) -> None:
    http.request("POST", PODS, pod("lonely", nodeName="edge-1"))
    http.request("POST", PODS, pod("pending"))
    result = kubectl.run("logs", "lonely", check=False)
    assert result.returncode != 0 and "reaches no node's logs" in result.stderr
    result = kubectl.run("logs", "pending", check=False)
    assert "not bound to a node yet" in result.stderr
    two = pod("two", nodeName="edge-1")
    two["spec"]["containers"].append({"name": "sidecar", "image": "busybox"})
    http.request("POST", PODS, two)
    status, _, body = http.request("GET", f"{PODS}/two/log")
    assert status == 400 and "choose one of: [app sidecar]" in json.loads(body)["message"]
    status, _, body = http.request("GET", f"{PODS}/two/log?container=app&tailLines=-1")
    assert status == 400 and "tailLines" in json.loads(body)["message"]


def test_kubectl_get_pods_shows_why_a_container_waits_or_ended(
    kubectl: Kubectl, http: Http, tmp_path: Path
) -> None:
    cases = {
        "crashing": ({"waiting": {"reason": "CrashLoopBackOff"}}, "Running", "CrashLoopBackOff"),
        "pulling": ({"waiting": {"reason": "ErrImagePull"}}, "Pending", "ErrImagePull"),
        "done": ({"terminated": {"exitCode": 0, "reason": "Completed"}}, "Succeeded", "Completed"),
        "killed": ({"terminated": {"exitCode": 137, "signal": 9}}, "Failed", "Signal:9"),
        "up": ({"running": {}}, "Running", "Running"),
    }
    for name, (state, phase, _) in cases.items():
        http.request("POST", PODS, pod(f"show-{name}", nodeName="edge-1"))
        status = {
            "phase": phase,
            "containerStatuses": [{"name": "app", "ready": "running" in state, "state": state}],
        }
        http.request(
            "PATCH",
            f"{PODS}/show-{name}/status",
            {"status": status},
            headers={"Content-Type": "application/merge-patch+json"},
        )
    rows = {line.split()[0]: line.split() for line in kubectl.run("get", "pods").stdout.splitlines()[1:]}
    for name, (_, _, shown) in cases.items():
        assert rows[f"show-{name}"][2] == shown, name
