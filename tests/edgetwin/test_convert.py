"""``edgetwin convert`` as a user runs it: KubeEdge's v1alpha2 demos in, v1beta1 that kubectl applies out."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.fixtures.apiserver import ApiServerThread, make_kubectl
from tests.fixtures.processes import run_cli
from tests.fixtures.twin import DATA
from twin.manifests import load_manifests

KUBEEDGE = DATA / "kubeedge-v1alpha2"


def test_the_demos_convert_load_into_the_twin_and_apply_with_kubectl(
    module_apiserver_with_crds: ApiServerThread, tmp_path: Path
) -> None:
    out = tmp_path / "v1beta1.yaml"
    result = run_cli("convert", str(KUBEEDGE), "-o", str(out), "--node", "edge-node-1")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    *notes, summary = result.stderr.splitlines()
    counts = "converted 7 DeviceModel(s) and 8 Device(s)"
    assert summary == f"{counts}; {len(notes)} note(s) above; written to {out}"
    assert all(line.startswith(("Device default/", "DeviceModel default/")) for line in notes)

    manifests = load_manifests([out])
    assert len(manifests.devices) == 8 and len(manifests.models) == 7
    assert {d.spec.nodeName for d in manifests.devices.values()} == {"edge-node-1"}

    kubectl = make_kubectl(module_apiserver_with_crds, tmp_path / "kubectl")
    applied = kubectl.run("apply", "-f", str(out)).stdout
    assert "device.devices.kubeedge.io/led-light-instance-01 created" in applied
    assert "devicemodel.devices.kubeedge.io/traffic-light created" in applied
    names = kubectl.run("get", "devices", "-o", "name").stdout.split()
    assert "device.devices.kubeedge.io/modbustcp-device" in names and len(names) == 8
    got = yaml.safe_load(kubectl.run("get", "device", "modbusrtu-device", "-o", "yaml").stdout)
    assert got["spec"]["protocol"]["configData"]["serialPort"] == "/dev/ttyS0"


def test_stdin_to_stdout_with_what_was_left_out_on_stderr() -> None:
    source = (KUBEEDGE / "led-light.yaml").read_text()
    result = subprocess.run(
        [sys.executable, "-m", "edgetwin", "convert", "-"],
        input=source,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    docs = list(yaml.safe_load_all(result.stdout))
    assert [(d["apiVersion"], d["kind"]) for d in docs] == [
        ("devices.kubeedge.io/v1beta1", "DeviceModel"),
        ("devices.kubeedge.io/v1beta1", "Device"),
    ]
    assert docs[1]["spec"]["nodeName"] == "edge-node1"  # from the nodeSelector
    assert (
        "DeviceModel default/led-light: spec.properties[gpio-pin-number].type.int.defaultValue"
        in result.stderr
    )


def test_invalid_yaml_is_one_line_naming_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: devices.kubeedge.io/v1alpha2\nkind: Device\nspec: [unclosed\n")
    result = run_cli("convert", str(bad))
    assert result.returncode == 2
    assert result.stderr.startswith(f"edgetwin convert: error: {bad}: not valid YAML (line ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""


@pytest.mark.parametrize(
    "text",
    [
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: light-mapper}\n",
        "just: a mapping\n",
        "- a list\n",
        "",
    ],
    ids=["deployment", "mapping", "list", "empty"],
)
def test_input_without_kubeedge_devices_is_refused_in_one_line(tmp_path: Path, text: str) -> None:
    path = tmp_path / "other.yaml"
    path.write_text(text)
    result = run_cli("convert", str(path))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"edgetwin convert: error: {path}: no KubeEdge Device or DeviceModel "
        "(devices.kubeedge.io/v1alpha1, v1alpha2 or v1beta1) in it"
    )


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    result = run_cli("convert", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert (
        result.stderr.strip() == f"edgetwin convert: error: {tmp_path / 'nope.yaml'}: no such file or folder"
    )


def test_help_explains_the_command() -> None:
    result = run_cli("convert", "--help")
    assert result.returncode == 0
    assert "v1alpha2" in result.stdout and "--node" in result.stdout and "stderr" in result.stdout


def test_a_folder_leaves_out_files_without_devices_and_needs_at_least_one(tmp_path: Path) -> None:
    folder = tmp_path / "old"
    folder.mkdir()
    (folder / "crd.yaml").write_text("apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n")
    result = run_cli("convert", str(folder))
    assert result.returncode == 2
    assert "no KubeEdge Device or DeviceModel" in result.stderr and str(folder) in result.stderr

    (folder / "led.yaml").write_text((KUBEEDGE / "led-light.yaml").read_text())
    result = run_cli("convert", str(folder))
    assert result.returncode == 0, result.stderr
    kinds = [d["kind"] for d in yaml.safe_load_all(result.stdout)]
    assert kinds == ["DeviceModel", "Device"]
