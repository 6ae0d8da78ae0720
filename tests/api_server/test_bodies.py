"""Hostile request bodies: YAML alias bombs, deep nesting, oversized and amplifying patches.

Each is refused with a ``Status`` naming the problem (400 for a body the server will not decode, as
kube-apiserver does; 413 past the size limit; 422 for a JSON patch that grows past it), and the
server keeps serving.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from api_server.limits import MAX_BODY_BYTES, MAX_DEPTH
from tests.fixtures.apiserver import ApiServerThread, Http

CONFIGMAPS = "/api/v1/namespaces/default/configmaps"
DEVICES = "/apis/devices.kubeedge.io/v1beta1/namespaces/default/devices"
YAML = "application/yaml"
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"


@pytest.fixture(scope="module")
def http(module_apiserver_with_crds: ApiServerThread) -> Iterator[Http]:
    yield Http.to(module_apiserver_with_crds)


def configmap(name: str, **fields: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, **fields}


def status_of(status: int, body: bytes) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(body)
    assert parsed["kind"] == "Status", parsed
    assert parsed["code"] == status
    return parsed


def assert_still_serving(http: Http) -> None:
    name = f"alive-{len(http.request('GET', CONFIGMAPS)[2])}"
    status, _, _ = http.request("POST", CONFIGMAPS, configmap(name, data={"k": "v"}))
    assert status == 201


def alias_bomb(levels: int = 6, fan_out: int = 10, leaf: str = "lol" * 10) -> bytes:
    """A small YAML document whose aliases expand to ``fan_out ** levels`` copies of ``leaf``."""
    lines = ["apiVersion: v1", "kind: ConfigMap", "metadata: {name: bomb}", "bomb:"]
    lines.append(f"  l0: &l0 [{', '.join([leaf] * fan_out)}]")
    lines += [f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * fan_out)}]" for i in range(1, levels)]
    return "\n".join(lines).encode()


def nested_json(depth: int) -> str:
    """A JSON value ``depth`` levels deep, objects and lists alternating (an object outermost)."""
    opens = ['{"n":' if level % 2 == 0 else "[" for level in range(depth)]
    closes = ["}" if level % 2 == 0 else "]" for level in reversed(range(depth))]
    return "".join(opens) + '"bottom"' + "".join(closes)


def nested_yaml(depth: int) -> str:
    """The same in YAML block style, each level indented one more step."""
    lines = []
    for level in range(depth):
        lines.append("  " * level + ("- " if level % 2 == 0 else "n:"))
    return "\n".join(lines) + " bottom"


# -- YAML aliases -------------------------------------------------------------------------------


def test_a_yaml_alias_bomb_is_refused_with_a_400_and_the_server_keeps_serving(http: Http) -> None:
    bomb = alias_bomb()
    assert len(bomb) < 1024  # expands to about 35 MB of JSON
    status, _, body = http.request("POST", CONFIGMAPS, raw=bomb, headers={"Content-Type": YAML})
    refused = status_of(status, body)
    assert (status, refused["reason"]) == (400, "BadRequest")
    assert "aliases" in refused["message"]
    assert "16 MiB" in refused["message"]
    assert http.request("GET", CONFIGMAPS + "/bomb")[0] == 404
    assert_still_serving(http)


def test_a_yaml_alias_bomb_in_a_server_side_apply_is_refused(http: Http) -> None:
    status, _, body = http.request(
        "PATCH", CONFIGMAPS + "/bomb?fieldManager=test", raw=alias_bomb(), headers={"Content-Type": APPLY}
    )
    assert status == 400
    assert "aliases" in status_of(status, body)["message"]
    assert_still_serving(http)


def test_a_recursive_yaml_alias_is_refused_with_a_400(http: Http) -> None:
    looped = b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: loop}\nloop: &self [*self]\n"
    status, _, body = http.request("POST", CONFIGMAPS, raw=looped, headers={"Content-Type": YAML})
    assert status == 400
    assert "refers to itself" in status_of(status, body)["message"]
    assert_still_serving(http)


def test_yaml_aliases_that_expand_modestly_are_accepted(http: Http) -> None:
    document = (
        b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: anchors}\n"
        b"data: &d {a: one, b: two}\nbinaryData: {}\ncopy: *d\n"
    )
    status, _, body = http.request("POST", CONFIGMAPS, raw=document, headers={"Content-Type": YAML})
    assert status == 201, body
    assert json.loads(body)["copy"] == {"a": "one", "b": "two"}


# -- nesting --------------------------------------------------------------------------------------

# Every verb that takes a body, with a body of ``depth`` levels nested at the given place.
VERBS = {
    "create json": ("POST", CONFIGMAPS, "application/json", lambda v: configmap("deep", deep=v)),
    "create yaml": ("POST", CONFIGMAPS, YAML, lambda v: configmap("deep", deep=v)),
    "create device": ("POST", DEVICES, "application/json", None),
    "update json": ("PUT", CONFIGMAPS + "/target", "application/json", lambda v: configmap("target", deep=v)),
    "update yaml": ("PUT", CONFIGMAPS + "/target", YAML, lambda v: configmap("target", deep=v)),
    "merge patch": ("PATCH", CONFIGMAPS + "/target", MERGE, lambda v: {"deep": v}),
    "json patch": (
        "PATCH",
        CONFIGMAPS + "/target",
        JSON_PATCH,
        lambda v: [{"op": "add", "path": "/deep", "value": v}],
    ),
    "strategic merge patch": ("PATCH", CONFIGMAPS + "/target", STRATEGIC, lambda v: {"deep": v}),
    "apply yaml": (
        "PATCH",
        CONFIGMAPS + "/target?fieldManager=t",
        APPLY,
        lambda v: configmap("target", deep=v),
    ),
    "apply json": (
        "PATCH",
        CONFIGMAPS + "/target?fieldManager=t",
        APPLY,
        lambda v: configmap("target", deep=v),
    ),
    "delete options": ("DELETE", CONFIGMAPS + "/target", "application/json", lambda v: {"deep": v}),
}


def deep_body(verb: str, depth: int) -> bytes:
    """The body for ``verb``, ``depth`` levels deep in all (the top object is level 1)."""
    _, _, content_type, shape = VERBS[verb]
    if shape is None:  # a Device: spec.protocol.configData keeps unknown fields
        outer: Any = {
            "apiVersion": "devices.kubeedge.io/v1beta1",
            "kind": "Device",
            "metadata": {"name": "deep"},
            "spec": {"deviceModelRef": {"name": "m"}, "protocol": {"configData": "PLACEHOLDER"}},
        }
        levels_above = 3
    else:
        outer = shape("PLACEHOLDER")
        levels_above = 2 if verb == "json patch" else 1
    text = json.dumps(outer).replace('"PLACEHOLDER"', nested_json(depth - levels_above))
    if content_type == YAML or verb == "apply yaml":
        # not JSON any more, so the YAML decoder (flow style) reads it
        text = "# YAML\n" + text
    return text.encode()


def send(http: Http, verb: str, body: bytes) -> tuple[int, bytes]:
    method, path, content_type, _ = VERBS[verb]
    if method in ("PUT", "PATCH", "DELETE"):
        http.request("DELETE", CONFIGMAPS + "/target")
        assert http.request("POST", CONFIGMAPS, configmap("target", data={"k": "v"}))[0] == 201
        if method == "PUT":
            current = json.loads(http.request("GET", CONFIGMAPS + "/target")[2])
            rv = current["metadata"]["resourceVersion"]
            body = body.replace(b'"name": "target"', f'"name": "target", "resourceVersion": "{rv}"'.encode())
    else:
        http.request("DELETE", path + "/deep")
    status, _, answer = http.request(method, path, raw=body, headers={"Content-Type": content_type})
    return status, answer


@pytest.mark.parametrize("verb", VERBS)
@pytest.mark.parametrize("depth", [1_000, 5_000])
def test_a_body_nested_too_deep_is_a_400_for_every_verb(http: Http, verb: str, depth: int) -> None:
    status, answer = send(http, verb, deep_body(verb, depth))
    refused = status_of(status, answer)
    assert (status, refused["reason"]) == (400, "BadRequest"), refused
    assert f"more than {MAX_DEPTH} levels" in refused["message"]
    assert_still_serving(http)


def test_a_yaml_body_nested_too_deep_in_block_style_is_a_400(http: Http) -> None:
    document = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: deep}\ndeep:\n" + "\n".join(
        "  " + line for line in nested_yaml(1_000).splitlines()
    )
    status, _, answer = http.request(
        "POST", CONFIGMAPS, raw=document.encode(), headers={"Content-Type": YAML}
    )
    assert status == 400
    assert f"more than {MAX_DEPTH} levels" in status_of(status, answer)["message"]


@pytest.mark.parametrize("verb", VERBS)
def test_a_body_nested_to_the_limit_is_accepted_by_every_verb(http: Http, verb: str) -> None:
    status, answer = send(http, verb, deep_body(verb, MAX_DEPTH))
    assert status in (200, 201), answer
    if verb != "delete options":
        path = CONFIGMAPS + "/deep" if VERBS[verb][0] == "POST" else CONFIGMAPS + "/target"
        if verb == "create device":
            path = DEVICES + "/deep"
        # reading it back (a list adds two levels, a watch event one) works too
        assert http.request("GET", path)[0] == 200
        assert http.request("GET", path.rsplit("/", 1)[0])[0] == 200


# -- size -----------------------------------------------------------------------------------------


def test_a_body_over_the_size_limit_is_a_413_status(http: Http) -> None:
    huge = json.dumps(configmap("huge", data={"k": "x" * MAX_BODY_BYTES})).encode()
    status, _, answer = http.request("POST", CONFIGMAPS, raw=huge)
    refused = status_of(status, answer)
    assert (status, refused["reason"]) == (413, "RequestEntityTooLarge")
    assert_still_serving(http)


def test_json_patch_copies_cannot_grow_an_object_past_the_size_limit(http: Http) -> None:
    assert http.request("POST", CONFIGMAPS, configmap("doubling", data={"k": "x" * 1024}))[0] == 201
    # each copy doubles the object: 40 of them would make it a terabyte
    operations = [{"op": "copy", "from": "/data", "path": f"/data/c{i}"} for i in range(40)]
    status, _, answer = http.request(
        "PATCH", CONFIGMAPS + "/doubling", operations, headers={"Content-Type": JSON_PATCH}
    )
    refused = status_of(status, answer)
    assert (status, refused["reason"]) == (422, "Invalid")
    assert "accumulated size" in refused["message"]
    assert_still_serving(http)


def test_json_patch_copies_cannot_nest_an_object_too_deep(http: Http) -> None:
    assert http.request("POST", CONFIGMAPS, configmap("deepening", deep={"d": {}}))[0] == 201
    # copying /deep into itself doubles its depth each time while it stays small
    operations = []
    path = "/deep/d"
    for _ in range(MAX_DEPTH):
        operations.append({"op": "copy", "from": "/deep/d", "path": path + "/d"})
        path += "/d"
    status, _, answer = http.request(
        "PATCH", CONFIGMAPS + "/deepening", operations, headers={"Content-Type": JSON_PATCH}
    )
    assert status == 400
    assert f"more than {MAX_DEPTH} levels" in status_of(status, answer)["message"]


def test_a_json_patch_of_too_many_operations_is_a_413(http: Http) -> None:
    assert http.request("POST", CONFIGMAPS, configmap("many-ops", data={"k": "v"}))[0] == 201
    operations = [{"op": "test", "path": "/data/k", "value": "v"}] * 10_001
    status, _, answer = http.request(
        "PATCH", CONFIGMAPS + "/many-ops", operations, headers={"Content-Type": JSON_PATCH}
    )
    assert status == 413
    assert "10000" in status_of(status, answer)["message"]


def test_yaml_values_json_cannot_hold_are_a_400_and_other_keys_become_strings(http: Http) -> None:
    head = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: %s}\n"
    for name, extra in (("binary", "raw: !!binary aGVsbG8=\n"), ("set", "raw: !!set {a, b}\n")):
        status, _, body = http.request(
            "POST", CONFIGMAPS, raw=(head % name + extra).encode(), headers={"Content-Type": YAML}
        )
        assert status == 400, body
        assert "JSON cannot" in status_of(status, body)["message"]
    document = head % "keys" + "data: {2: two, true: yes-value}\nwhen: 2024-01-02\n"
    status, _, body = http.request("POST", CONFIGMAPS, raw=document.encode(), headers={"Content-Type": YAML})
    assert status == 201, body
    created = json.loads(body)
    assert created["data"] == {"2": "two", "true": "yes-value"}
    assert created["when"] == "2024-01-02"
