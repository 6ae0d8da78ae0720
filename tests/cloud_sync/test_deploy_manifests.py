"""cloud-sync/deploy/ applies as a cluster takes it, and its parts agree with each other.

``kubectl apply -f cloud-sync/deploy/`` (and ``--dry-run=server``) against the embedded API server,
which stores and checks Deployments, Services and RBAC as a cluster does. Then what no API server
checks: the Deployment's command is one ``edgetwin cloud`` accepts, the ConfigMap is the shipped
mosquitto.conf, every path that file names is a volume the broker container mounts, and every
Service reaches a port a container declares. That the RBAC is exactly what cloud-sync uses, and
that a node joins through this broker, is ``test_deploy_run.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from edgetwin.cli import build_parser
from tests.fixtures.apiserver import ApiServerThread, Kubectl, make_kubectl

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "cloud-sync" / "deploy"
MOSQUITTO_CONF = DEPLOY / "mosquitto" / "mosquitto.conf"


def manifests() -> dict[tuple[str, str], dict[str, Any]]:
    """Every object in cloud-sync/deploy/, by (kind, name)."""
    found = {}
    for path in sorted(DEPLOY.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                found[(doc["kind"], doc["metadata"]["name"])] = doc
    return found


def pod_spec() -> dict[str, Any]:
    spec: dict[str, Any] = manifests()[("Deployment", "edgetwin-cloud")]["spec"]["template"]["spec"]
    return spec


def container(name: str) -> dict[str, Any]:
    spec = pod_spec()
    return next(c for c in spec["containers"] + spec.get("initContainers", []) if c["name"] == name)


@pytest.fixture(scope="module")
def kubectl(module_apiserver_with_crds: ApiServerThread, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return make_kubectl(module_apiserver_with_crds, tmp_path_factory.mktemp("kubectl-cache"))


def test_kubectl_apply_of_the_folder_creates_every_object_and_again_changes_nothing(kubectl: Kubectl) -> None:
    objects = manifests()
    # as on a cluster, a server-side dry run checks objects against namespaces that exist
    kubectl.run("apply", "-f", str(DEPLOY / "00-namespace.yaml"))
    dry = kubectl.run("apply", "--dry-run=server", "-f", str(DEPLOY)).stdout.splitlines()
    assert dry[0] == "namespace/edgetwin unchanged (server dry run)"
    assert len(dry) == len(objects) and all(line.endswith(" created (server dry run)") for line in dry[1:])
    assert kubectl.run("get", "deploy", "-n", "edgetwin", "-o", "name").stdout == ""  # nothing stored
    created = kubectl.run("apply", "-f", str(DEPLOY)).stdout.splitlines()
    assert len(created) == len(objects) and all(line.endswith(" created") for line in created[1:]), created
    again = kubectl.run("apply", "-f", str(DEPLOY)).stdout.splitlines()
    assert all(line.endswith(" unchanged") for line in again), again
    table = kubectl.run("get", "deploy,svc,sa", "-n", "edgetwin").stdout
    assert "deployment.apps/edgetwin-cloud" in table and "service/edgetwin-cloud-broker" in table
    role = kubectl.run("get", "role", "edgetwin-cloud-leases", "-n", "kube-node-lease", "-o", "name").stdout
    assert role.strip() == "role.rbac.authorization.k8s.io/edgetwin-cloud-leases"


def test_the_broker_config_map_is_the_shipped_mosquitto_conf() -> None:
    config_map = manifests()[("ConfigMap", "edgetwin-cloud-broker")]
    assert config_map["data"]["mosquitto.conf"] == MOSQUITTO_CONF.read_text()


def test_the_deployments_command_is_one_edgetwin_cloud_accepts() -> None:
    cloud = container("cloud-sync")
    args = build_parser("cloud").parse_args(cloud["args"])
    data_mount = next(m["mountPath"] for m in cloud["volumeMounts"] if m["name"] == "data")
    assert args.data_dir == Path(data_mount) and args.kubeconfig is None  # in-cluster config
    assert args.broker == "mqtt://127.0.0.1:1883" and "mosquitto" in args.broker_reload_command
    ports = {p["containerPort"] for p in cloud["ports"]}
    assert {args.metrics_port, args.dashboard_port} == ports
    assert pod_spec()["shareProcessNamespace"] is True  # the reload command signals the other container
    assert pod_spec()["serviceAccountName"] == "edgetwin-cloud"


def test_every_path_mosquitto_conf_names_is_mounted_in_the_broker_container() -> None:
    broker = container("mosquitto")
    mounts = [m["mountPath"] for m in broker["volumeMounts"]]
    config_path = broker["command"][broker["command"].index("-c") + 1]
    assert any(config_path.startswith(m + "/") for m in mounts)
    keys = ("password_file", "acl_file", "certfile", "keyfile", "persistence_location")
    named = [
        line.split(None, 1)[1] for line in MOSQUITTO_CONF.read_text().splitlines() if line.startswith(keys)
    ]
    assert len(named) == len(keys)
    for path in named:
        assert any(path.startswith(m.rstrip("/") + "/") for m in mounts), path
    data = next(m["mountPath"] for m in container("cloud-sync")["volumeMounts"] if m["name"] == "data")
    assert f"password_file {data}/broker/passwd" in MOSQUITTO_CONF.read_text()


def test_each_service_reaches_a_port_a_container_declares() -> None:
    declared = {p["name"]: p["containerPort"] for c in pod_spec()["containers"] for p in c.get("ports", [])}
    labels = manifests()[("Deployment", "edgetwin-cloud")]["spec"]["template"]["metadata"]["labels"]
    for (kind, name), obj in manifests().items():
        if kind != "Service":
            continue
        assert obj["spec"]["selector"].items() <= labels.items(), name
        for port in obj["spec"]["ports"]:
            assert port["targetPort"] in declared, (name, port)
    broker_port = manifests()[("Service", "edgetwin-cloud-broker")]["spec"]["ports"][0]
    assert declared[broker_port["targetPort"]] == 8883
    assert "listener 8883\n" in MOSQUITTO_CONF.read_text()  # the TLS listener, on every address
