"""The `kubernetes` Python client (custom objects, core v1, leases, watch) against the API server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from tests.fixtures.apiserver import ApiServerThread, kube_api_client

GROUP, VERSION = "devices.kubeedge.io", "v1beta1"


@pytest.fixture(scope="module")
def api(module_apiserver_with_crds: ApiServerThread) -> Iterator[client.ApiClient]:
    api_client = kube_api_client(module_apiserver_with_crds)
    yield api_client
    api_client.close()


@pytest.fixture(scope="module")
def custom(api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)


@pytest.fixture(scope="module")
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


def device(name: str, *, node: str = "edge-node-1", labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Device",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "deviceModelRef": {"name": "thermostat-model"},
            "nodeName": node,
            "properties": [{"name": "target", "desired": {"value": "20"}, "collectCycle": 1000}],
        },
    }


def create(
    custom: client.CustomObjectsApi, body: dict[str, Any], namespace: str = "default"
) -> dict[str, Any]:
    result: dict[str, Any] = custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "devices", body
    )
    return result


def test_custom_objects_crud(custom: client.CustomObjectsApi) -> None:
    created = create(custom, device("crud-1"))
    assert created["metadata"]["generation"] == 1
    assert created["metadata"]["uid"]
    got = custom.get_namespaced_custom_object(GROUP, VERSION, "default", "devices", "crud-1")
    assert got == created

    patched = custom.patch_namespaced_custom_object(
        GROUP, VERSION, "default", "devices", "crud-1", {"spec": {"nodeName": "edge-node-2"}}
    )
    assert patched["spec"]["nodeName"] == "edge-node-2"
    assert patched["metadata"]["generation"] == 2
    assert int(patched["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])

    patched["spec"]["properties"][0]["desired"]["value"] = "22"
    replaced = custom.replace_namespaced_custom_object(
        GROUP, VERSION, "default", "devices", "crud-1", patched
    )
    assert replaced["spec"]["properties"][0]["desired"]["value"] == "22"

    json_patched = custom.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        "default",
        "devices",
        "crud-1",
        [{"op": "add", "path": "/metadata/labels", "value": {"room": "lab"}}],
        _content_type="application/json-patch+json",
    )
    assert json_patched["metadata"]["labels"] == {"room": "lab"}
    assert json_patched["metadata"]["generation"] == 3  # labels are metadata: no new generation

    custom.delete_namespaced_custom_object(GROUP, VERSION, "default", "devices", "crud-1")
    with pytest.raises(ApiException) as missing:
        custom.get_namespaced_custom_object(GROUP, VERSION, "default", "devices", "crud-1")
    assert missing.value.status == 404


def test_create_of_an_existing_name_is_a_409_already_exists(custom: client.CustomObjectsApi) -> None:
    create(custom, device("dup"))
    with pytest.raises(ApiException) as exists:
        create(custom, device("dup"))
    assert exists.value.status == 409
    assert '"reason":"AlreadyExists"' in exists.value.body.replace(" ", "")


def test_update_with_a_stale_resource_version_is_a_409_conflict(custom: client.CustomObjectsApi) -> None:
    first = create(custom, device("contended"))
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, "default", "devices", "contended", {"spec": {"nodeName": "a"}}
    )
    first["spec"]["nodeName"] = "b"
    with pytest.raises(ApiException) as conflict:
        custom.replace_namespaced_custom_object(GROUP, VERSION, "default", "devices", "contended", first)
    assert conflict.value.status == 409
    assert "the object has been modified" in conflict.value.body
    stale_patch = {
        "metadata": {"resourceVersion": first["metadata"]["resourceVersion"]},
        "spec": {"nodeName": "c"},
    }
    with pytest.raises(ApiException) as conflict:
        custom.patch_namespaced_custom_object(GROUP, VERSION, "default", "devices", "contended", stale_patch)
    assert conflict.value.status == 409


def test_status_subresource_keeps_spec_and_generation(custom: client.CustomObjectsApi) -> None:
    create(custom, device("reporter"))
    status = {
        "status": {"state": "online", "twins": [{"propertyName": "target", "reported": {"value": "20"}}]}
    }
    updated = custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, "default", "devices", "reporter", status
    )
    assert updated["status"]["state"] == "online"
    assert updated["metadata"]["generation"] == 1
    with pytest.raises(ApiException) as invalid:
        custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, "default", "devices", "reporter", {"status": {"state": "sleepy"}}
        )
    assert invalid.value.status == 422
    assert "status.state" in invalid.value.body


def test_list_with_label_selector_and_pages(custom: client.CustomObjectsApi, core: client.CoreV1Api) -> None:
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="paging")))
    for index in range(7):
        create(custom, device(f"page-{index}", labels={"batch": "odd" if index % 2 else "even"}), "paging")
    odd = custom.list_namespaced_custom_object(
        GROUP, VERSION, "paging", "devices", label_selector="batch=odd"
    )
    assert [d["metadata"]["name"] for d in odd["items"]] == ["page-1", "page-3", "page-5"]
    names: list[str] = []
    token = None
    while True:
        page = custom.list_namespaced_custom_object(
            GROUP, VERSION, "paging", "devices", limit=3, _continue=token
        )
        names += [d["metadata"]["name"] for d in page["items"]]
        token = page["metadata"].get("continue")
        if not token:
            break
    assert names == [f"page-{i}" for i in range(7)]
    everywhere = custom.list_cluster_custom_object(
        GROUP, VERSION, "devices", field_selector="metadata.namespace=paging"
    )
    assert len(everywhere["items"]) == 7


def test_finalizers_hold_deletion_until_removed(custom: client.CustomObjectsApi) -> None:
    body = device("held")
    body["metadata"]["finalizers"] = ["edgetwin.io/twin-cleanup"]
    create(custom, body)
    custom.delete_namespaced_custom_object(GROUP, VERSION, "default", "devices", "held")
    held = custom.get_namespaced_custom_object(GROUP, VERSION, "default", "devices", "held")
    assert held["metadata"]["deletionTimestamp"]
    custom.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        "default",
        "devices",
        "held",
        [{"op": "remove", "path": "/metadata/finalizers"}],
        _content_type="application/json-patch+json",
    )
    with pytest.raises(ApiException) as gone:
        custom.get_namespaced_custom_object(GROUP, VERSION, "default", "devices", "held")
    assert gone.value.status == 404


def test_watch_streams_changes_of_one_namespace(
    custom: client.CustomObjectsApi, core: client.CoreV1Api
) -> None:
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="watched")))
    listed = custom.list_namespaced_custom_object(GROUP, VERSION, "watched", "devices")
    events: list[tuple[str, str]] = []
    done = threading.Event()

    def consume() -> None:
        w = watch.Watch()
        for event in w.stream(
            custom.list_namespaced_custom_object,
            GROUP,
            VERSION,
            "watched",
            "devices",
            resource_version=listed["metadata"]["resourceVersion"],
            timeout_seconds=20,
        ):
            events.append((event["type"], event["object"]["metadata"]["name"]))
            if event["type"] == "DELETED":
                w.stop()
        done.set()

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    create(custom, device("w1"), "watched")
    create(custom, device("elsewhere"))  # another namespace: not seen
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, "watched", "devices", "w1", {"spec": {"nodeName": "n"}}
    )
    custom.delete_namespaced_custom_object(GROUP, VERSION, "watched", "devices", "w1")
    assert done.wait(30)
    assert events == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")]


def test_core_v1_nodes_pods_events_configmaps_secrets(core: client.CoreV1Api) -> None:
    node = core.create_node(
        client.V1Node(
            metadata=client.V1ObjectMeta(name="edge-node-1", labels={"node-role.kubernetes.io/edge": ""})
        )
    )
    assert node.metadata.uid
    ready = {"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "EdgetwinHeartbeat"}]}}
    node = core.patch_node_status("edge-node-1", ready)
    assert node.status.conditions[0].status == "True"
    edge_nodes = core.list_node(label_selector="node-role.kubernetes.io/edge")
    assert [n.metadata.name for n in edge_nodes.items] == ["edge-node-1"]

    for name, node_name in (("on-edge", "edge-node-1"), ("elsewhere", "cloud-1")):
        core.create_namespaced_pod(
            "default",
            client.V1Pod(
                metadata=client.V1ObjectMeta(name=name),
                spec=client.V1PodSpec(
                    node_name=node_name, containers=[client.V1Container(name="app", image="busybox")]
                ),
            ),
        )
    pods = core.list_namespaced_pod("default", field_selector="spec.nodeName=edge-node-1")
    assert [p.metadata.name for p in pods.items] == ["on-edge"]
    assert pods.items[0].status.phase == "Pending"
    running = core.patch_namespaced_pod_status("on-edge", "default", {"status": {"phase": "Running"}})
    assert running.status.phase == "Running"

    core.create_namespaced_event(
        "default",
        client.CoreV1Event(
            metadata=client.V1ObjectMeta(name="on-edge.1"),
            involved_object=client.V1ObjectReference(kind="Pod", name="on-edge", namespace="default"),
            reason="Started",
            message="started on edge-node-1",
            type="Normal",
        ),
    )
    events = core.list_namespaced_event("default", field_selector="involvedObject.name=on-edge")
    assert [e.reason for e in events.items] == ["Started"]

    core.create_namespaced_config_map(
        "default",
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name="mapper-settings"), data={"interval": "1000"}),
    )
    config_map = core.read_namespaced_config_map("mapper-settings", "default")
    config_map.data["interval"] = "500"
    assert core.replace_namespaced_config_map("mapper-settings", "default", config_map).data == {
        "interval": "500"
    }

    core.create_namespaced_secret(
        "default",
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="broker-credentials"),
            string_data={"password": "x"},
            type="Opaque",
        ),
    )
    assert core.read_namespaced_secret("broker-credentials", "default").type == "Opaque"
    core.delete_namespaced_secret("broker-credentials", "default")
    assert [s.metadata.name for s in core.list_namespaced_secret("default").items] == []


def test_coordination_leases(api: client.ApiClient) -> None:
    leases = client.CoordinationV1Api(api)
    lease = leases.create_namespaced_lease(
        "kube-node-lease",
        client.V1Lease(
            metadata=client.V1ObjectMeta(name="edge-node-1"),
            spec=client.V1LeaseSpec(holder_identity="edge-node-1", lease_duration_seconds=40),
        ),
    )
    lease.spec.renew_time = lease.metadata.creation_timestamp
    renewed = leases.replace_namespaced_lease("edge-node-1", "kube-node-lease", lease)
    assert renewed.spec.renew_time == lease.metadata.creation_timestamp
    with pytest.raises(ApiException) as conflict:
        leases.replace_namespaced_lease("edge-node-1", "kube-node-lease", lease)
    assert conflict.value.status == 409


def test_namespace_deletion_removes_its_objects(
    custom: client.CustomObjectsApi, core: client.CoreV1Api
) -> None:
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="temporary")))
    create(custom, device("short-lived"), "temporary")
    core.delete_namespace("temporary")
    assert "temporary" not in [n.metadata.name for n in core.list_namespace().items]
    with pytest.raises(ApiException) as missing:
        create(custom, device("again"), "temporary")
    assert missing.value.status == 404


def test_a_new_crd_is_served_at_once_with_schema_defaults_and_goes_away_when_deleted(
    api: client.ApiClient, custom: client.CustomObjectsApi
) -> None:
    extensions = client.ApiextensionsV1Api(api)
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "size": {"type": "integer", "default": 3, "minimum": 1},
                    "color": {"type": "string", "enum": ["red", "green"]},
                },
            }
        },
    }
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": schema}}
            ],
        },
    }
    created = extensions.create_custom_resource_definition(crd)
    assert {c.type: c.status for c in created.status.conditions} == {
        "NamesAccepted": "True",
        "Established": "True",
    }

    widget = custom.create_namespaced_custom_object(
        "example.com",
        "v1",
        "default",
        "widgets",
        {
            "apiVersion": "example.com/v1",
            "kind": "Widget",
            "metadata": {"name": "w"},
            "spec": {"color": "red"},
        },
    )
    assert widget["spec"] == {"color": "red", "size": 3}
    with pytest.raises(ApiException) as invalid:
        custom.create_namespaced_custom_object(
            "example.com",
            "v1",
            "default",
            "widgets",
            {
                "apiVersion": "example.com/v1",
                "kind": "Widget",
                "metadata": {"name": "v"},
                "spec": {"size": 0},
            },
        )
    assert invalid.value.status == 422
    assert "spec.size" in invalid.value.body

    extensions.delete_custom_resource_definition("widgets.example.com")
    with pytest.raises(ApiException) as gone:
        custom.list_namespaced_custom_object("example.com", "v1", "default", "widgets")
    assert gone.value.status == 404


def test_replace_status_checks_the_resource_version(custom: client.CustomObjectsApi) -> None:
    current = create(custom, device("status-put"))
    current["status"] = {"state": "offline"}
    current["spec"]["nodeName"] = "ignored-on-status"
    replaced = custom.replace_namespaced_custom_object_status(
        GROUP, VERSION, "default", "devices", "status-put", current
    )
    assert replaced["status"] == {"state": "offline"}
    assert replaced["spec"]["nodeName"] == "edge-node-1"
    with pytest.raises(ApiException) as conflict:
        custom.replace_namespaced_custom_object_status(
            GROUP, VERSION, "default", "devices", "status-put", current
        )
    assert conflict.value.status == 409


def test_node_status_conditions_merge_by_type(core: client.CoreV1Api) -> None:
    core.create_node(client.V1Node(metadata=client.V1ObjectMeta(name="edge-node-merge")))
    both = {
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}, {"type": "MemoryPressure", "status": "False"}]
        }
    }
    core.patch_node_status("edge-node-merge", both)
    node = core.patch_node_status(
        "edge-node-merge",
        {"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "NoHeartbeat"}]}},
    )
    conditions = {c.type: (c.status, c.reason) for c in node.status.conditions}
    assert conditions == {"Ready": ("False", "NoHeartbeat"), "MemoryPressure": ("False", None)}


def test_server_side_apply_from_the_client_needs_a_field_manager(custom: client.CustomObjectsApi) -> None:
    body = device("applied")
    with pytest.raises(ApiException) as invalid:
        custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            "default",
            "devices",
            "applied",
            body,
            _content_type="application/apply-patch+yaml",
        )
    assert invalid.value.status == 422
    assert "fieldManager" in invalid.value.body
    # an apply that creates answers 201, as the real server does (the client returns no body for it)
    custom.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        "default",
        "devices",
        "applied",
        body,
        field_manager="cloud-sync",
        _content_type="application/apply-patch+yaml",
    )
    created = custom.get_namespaced_custom_object(GROUP, VERSION, "default", "devices", "applied")
    assert created["metadata"]["managedFields"][0]["manager"] == "cloud-sync"
