"""The API server's HTTP surface as raw requests: auth, discovery, OpenAPI, warnings, watch options."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fixtures.apiserver import ApiServerThread, Http

DEVICES = "/apis/devices.kubeedge.io/v1beta1/namespaces/default/devices"


@pytest.fixture(scope="module")
def http(module_apiserver_with_crds: ApiServerThread) -> Iterator[Http]:
    yield Http.to(module_apiserver_with_crds)


def device(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "devices.kubeedge.io/v1beta1",
        "kind": "Device",
        "metadata": {"name": name},
        "spec": {"deviceModelRef": {"name": "m"}, **spec},
    }


def test_requests_without_a_token_get_a_401_status(http: Http) -> None:
    status, _, body = http.request("GET", "/api/v1/namespaces", token=False)
    assert status == 401
    assert json.loads(body) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Unauthorized",
        "reason": "Unauthorized",
        "code": 401,
    }
    assert http.request("GET", "/healthz", token=False)[0] == 200


def test_aggregated_discovery_lists_devices_with_their_status_subresource(http: Http) -> None:
    accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
    status, headers, body = http.request("GET", "/apis", headers={"Accept": accept})
    assert status == 200
    assert headers["Content-Type"] == "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    groups = {item["metadata"]["name"]: item for item in json.loads(body)["items"]}
    resources = {r["resource"]: r for r in groups["devices.kubeedge.io"]["versions"][0]["resources"]}
    assert resources["devices"]["shortNames"] == ["dev"]
    assert [s["subresource"] for s in resources["devices"]["subresources"]] == ["status"]
    assert "subresources" not in resources["devicemodels"]


def test_openapi_v3_advertises_field_validation_for_devices(http: Http) -> None:
    index = json.loads(http.request("GET", "/openapi/v3")[2])
    url = index["paths"]["apis/devices.kubeedge.io/v1beta1"]["serverRelativeURL"]
    document = json.loads(http.request("GET", url)[2])
    post = document["paths"]["/apis/devices.kubeedge.io/v1beta1/namespaces/{namespace}/devices"]["post"]
    assert post["x-kubernetes-group-version-kind"] == {
        "group": "devices.kubeedge.io",
        "version": "v1beta1",
        "kind": "Device",
    }
    assert "fieldValidation" in [p["name"] for p in post["parameters"]]
    schema = document["components"]["schemas"]["io.kubeedge.devices.v1beta1.Device"]
    assert schema["properties"]["spec"]["required"] == ["deviceModelRef"]


def test_unknown_fields_warn_by_default_and_are_dropped(http: Http) -> None:
    body = device("warned")
    body["extra"] = 1
    status, headers, created = http.request("POST", DEVICES, body)
    assert status == 201
    assert headers["Warning"] == '299 - "unknown field \\"extra\\""'
    assert "extra" not in json.loads(created)
    status, _, refused = http.request(
        "POST", DEVICES + "?fieldValidation=Strict", {**body, "metadata": {"name": "strict"}}
    )
    assert status == 400
    assert json.loads(refused)["message"] == 'strict decoding error: unknown field "extra"'


def test_dry_run_validates_without_storing(http: Http) -> None:
    status, _, _ = http.request("POST", DEVICES + "?dryRun=All", device("dry"))
    assert status == 201
    assert http.request("GET", DEVICES + "/dry")[0] == 404


def test_delete_preconditions_and_deletecollection(http: Http) -> None:
    for name in ("pre", "col-1", "col-2"):
        assert (
            http.request("POST", DEVICES, device(name, nodeName="sweep" if name != "pre" else "keep"))[0]
            == 201
        )
    status, _, body = http.request("DELETE", DEVICES + "/pre", {"preconditions": {"uid": "not-the-uid"}})
    assert status == 409
    assert "Precondition failed" in json.loads(body)["message"]
    status, _, body = http.request("DELETE", DEVICES + "?fieldSelector=spec.nodeName%3Dsweep")
    assert status == 200
    assert sorted(o["metadata"]["name"] for o in json.loads(body)["items"]) == ["col-1", "col-2"]
    assert http.request("GET", DEVICES + "/pre")[0] == 200


def test_watch_path_and_initial_events_end_bookmark(http: Http) -> None:
    assert http.request("POST", DEVICES, device("initial"))[0] == 201
    events = http.lines(
        DEVICES
        + "?watch=true&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan"
        "&fieldSelector=metadata.name%3Dinitial",
        2,
    )
    assert [e["type"] for e in events] == ["ADDED", "BOOKMARK"]
    assert events[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    (legacy,) = http.lines("/apis/devices.kubeedge.io/v1beta1/watch/namespaces/default/devices/initial", 1)
    assert (legacy["type"], legacy["object"]["metadata"]["name"]) == ("ADDED", "initial")


def test_protobuf_body_of_an_unsupported_kind_is_a_415(http: Http) -> None:
    # k8s magic + runtime.Unknown{typeMeta{apiVersion "apps/v1", kind "Deployment"}}
    type_meta = b"\x0a\x07apps/v1\x12\x0aDeployment"
    raw = b"k8s\x00" + b"\x0a" + bytes([len(type_meta)]) + type_meta
    status, _, body = http.request(
        "POST",
        "/api/v1/namespaces/default/configmaps",
        raw=raw,
        headers={"Content-Type": "application/vnd.kubernetes.protobuf"},
    )
    assert status == 415
    assert "'Deployment'" in json.loads(body)["message"]
