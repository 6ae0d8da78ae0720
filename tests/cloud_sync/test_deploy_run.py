"""cloud-sync/deploy/ and node-agent/deploy/ run for real, with the embedded API server as the cluster.

One rehearsal of a real deployment for the module, with every shipped file as it is but for ports,
paths and the process to signal:

- the API server keeps an audit log of every request (``--audit-log``);
- mosquitto runs ``cloud-sync/deploy/mosquitto/mosquitto.conf``: plain MQTT on the loopback for
  cloud-sync, TLS for the nodes, the password file and ACL that cloud-sync writes, read again on
  the SIGHUP its ``--broker-reload-command`` sends;
- ``edgetwin cloud`` runs with the Deployment's arguments, ``--kubeconfig`` standing for the pod's
  service account (and ``--grace 3``, so that a node goes NotReady within the test);
- the gateway's mosquitto runs ``node-agent/deploy/mosquitto.conf``, and ``edgetwin node`` the
  command line that ``node-agent/deploy/edgetwin-node.service`` expands to with a node.env of the
  test's (the same keys as the shipped one), in the environment systemd would give it.

Then a node's life is played through everything cloud-sync asks of the API: a device reporting,
a device whose model is missing, a pod with a ConfigMap and a Secret, a desired value set at the
edge, the pod's log fetched with ``edgetwin cloud logs``, the pod deleted, the node frozen until
it is NotReady. The requests cloud-sync made are then compared with the RBAC it is deployed with.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.cloud_sync.test_deploy_manifests import DEPLOY, MOSQUITTO_CONF, container, manifests
from tests.fixtures.apiserver import CRD_DIR, ApiServerThread, Kubectl, make_kubectl
from tests.fixtures.brokers import Mosquitto, mosquitto_binary
from tests.fixtures.certs import TlsFiles, make_tls_files
from tests.fixtures.processes import Service, run_cli
from tests.fixtures.systemd import exec_start, read_environment_file
from tests.fixtures.tools import free_port

NODE_DEPLOY = DEPLOY.parents[1] / "node-agent" / "deploy"
NODE = "gw-1"
MODEL = """
apiVersion: devices.kubeedge.io/v1beta1
kind: DeviceModel
metadata: {name: thermo-model, namespace: default}
spec:
  protocol: virtual
  properties:
    - {name: temperature, type: FLOAT, accessMode: ReadOnly}
    - {name: target, type: INT, accessMode: ReadWrite, minimum: "0", maximum: "100"}
"""
DEVICES = f"""
apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata: {{name: thermo, namespace: default}}
spec:
  deviceModelRef: {{name: thermo-model}}
  nodeName: {NODE}
  protocol: {{protocolName: virtual}}
  properties:
    - name: temperature
      reportToCloud: true
      reportCycle: 200
      visitors: {{protocolName: virtual, configData: {{initial: "21.5"}}}}
    - name: target
      reportToCloud: true
      reportCycle: 200
      desired: {{value: "20"}}
      visitors: {{protocolName: virtual, configData: {{initial: "20"}}}}
---
apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata: {{name: orphan, namespace: default}}
spec:
  deviceModelRef: {{name: no-such-model}}
  nodeName: {NODE}
  protocol: {{protocolName: virtual}}
  properties: []
"""
POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "app", "namespace": "default"},
    "spec": {
        "nodeName": NODE,
        "terminationGracePeriodSeconds": 2,
        "containers": [
            {
                "name": "app",
                "image": "busybox",
                "command": ["sh", "-c", 'echo "$GREETING $PASSWORD"; sleep 1000'],
                "env": [
                    {
                        "name": "GREETING",
                        "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "greeting"}},
                    },
                    {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
                ],
            }
        ],
    },
}


def replaced(text: str, replacements: dict[str, str]) -> str:
    """``text`` with each key replaced, every one of them found (a shipped file changed: say so)."""
    for old, new in replacements.items():
        assert old in text, f"{old!r} is no longer in the shipped file: update this test"
        text = text.replace(old, new)
    return text


def cloud_broker_config(data: Path, tls: TlsFiles, plain: int, secure: int) -> str:
    return replaced(
        MOSQUITTO_CONF.read_text(),
        {
            "/var/lib/edgetwin-cloud": str(data),
            "/etc/edgetwin-cloud/tls/tls.crt": str(tls.server_cert),
            "/etc/edgetwin-cloud/tls/tls.key": str(tls.server_key),
            "listener 1883 127.0.0.1": f"listener {plain} 127.0.0.1",
            "listener 8883\n": f"listener {secure} 127.0.0.1\n",
        },
    )


def cloud_args(data: Path, kubeconfig: Path, broker: Mosquitto) -> list[str]:
    """The Deployment's ``edgetwin cloud`` arguments, pointed at this test's servers."""
    values = {
        "/var/lib/edgetwin-cloud": str(data),
        "mqtt://127.0.0.1:1883": broker.address.url,
        "pkill -HUP -x mosquitto": f"kill -HUP {broker.pid}",  # only this test's mosquitto
        "9464": str(free_port()),
        "8090": str(free_port()),
        "0.0.0.0": "127.0.0.1",
    }
    args = container("cloud-sync")["args"]
    assert set(values) <= set(args), "the Deployment's arguments changed: update this test"
    return [values.get(a, a) for a in args] + ["--kubeconfig", str(kubeconfig), "--grace", "3"]


def node_command(
    folder: Path, local: Mosquitto, secure: int, ca: Path, token: Path
) -> tuple[list[str], dict[str, str]]:
    """What systemd would run for the unit with a node.env of this test's, and its environment."""
    settings = folder / "node.env"
    settings.write_text(
        f"EDGETWIN_NODE={NODE}\n"
        f"EDGETWIN_BROKER={local.address.url}\n"
        f"EDGETWIN_CLOUD=mqtts://localhost:{secure}\n"
        f"EDGETWIN_TOKEN_FILE={token}\n"
        "EDGETWIN_MAPPERS=virtual\n"
        f'EDGETWIN_NODE_OPTIONS="--cloud-tls-ca {ca} --pods process --heartbeat 0.5"\n'
    )
    shipped = set(read_environment_file((NODE_DEPLOY / "node.env").read_text()))
    environment = read_environment_file(settings.read_text())
    assert set(environment) == shipped, "node.env's keys changed: update this test"
    argv = exec_start(
        (NODE_DEPLOY / "edgetwin-node.service").read_text(), environment, {"S": str(folder / "state")}
    )
    assert argv[0] == "/opt/edgetwin/bin/edgetwin"
    return argv[1:], {**os.environ, **environment}


@dataclass
class Rehearsal:
    kubectl: Kubectl
    audit_log: Path
    node_output: list[str]
    cloud_output: list[str]
    logs: str  # what `edgetwin cloud logs app` printed


def _wait(kubectl: Kubectl, target: str, condition: str, *args: str) -> None:
    kubectl.run("wait", target, f"--for={condition}", "--timeout=90s", *args, timeout=120)


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rehearsal]:
    folder = tmp_path_factory.mktemp("deployed")
    data, tls = folder / "var-lib-edgetwin-cloud", make_tls_files(folder / "tls")
    made = run_cli("cloud", "token", "--data-dir", str(data))  # as the Deployment's init container
    assert made.returncode == 0, made.stderr
    token_file = folder / "token"
    token_file.write_text(made.stdout)
    audit_log = folder / "audit.log"
    api = ApiServerThread(folder / "api", crds=(CRD_DIR,), audit_log=audit_log)
    plain, secure = free_port(), free_port()
    binary = mosquitto_binary()
    (folder / "cloud-broker").mkdir()
    (folder / "local-broker").mkdir()
    cloud_broker = Mosquitto(
        binary, folder / "cloud-broker", config=cloud_broker_config(data, tls, plain, secure), port=plain
    )
    local_port = free_port()
    local_config = replaced(
        (NODE_DEPLOY / "mosquitto.conf").read_text(),
        {"listener 1883 127.0.0.1": f"listener {local_port} 127.0.0.1"},
    )
    local_broker = Mosquitto(binary, folder / "local-broker", config=local_config, port=local_port)
    services: list[Service] = []
    try:
        api.start()
        cloud_broker.start()
        local_broker.start()
        kubectl = make_kubectl(api, folder / "kubectl-cache")
        kubectl.run("apply", "-f", str(DEPLOY))  # as on the cluster (nothing runs it here)
        kubectl.run("apply", "-f", "-", input=MODEL + "---" + DEVICES)
        kubectl.run("create", "configmap", "settings", "--from-literal=greeting=hello")
        kubectl.run("create", "secret", "generic", "creds", "--from-literal=password=s3cret")
        kubectl.run("apply", "-f", "-", input=json.dumps(POD))
        cloud = Service(cloud_args(data, api.kubeconfig, cloud_broker))  # the image runs `edgetwin ARGS`
        services.append(cloud)
        cloud.wait_for("edgetwin cloud is up", timeout=60)
        cloud.wait_for(f"admitted={NODE}", timeout=30)  # the node's password, then mosquitto's SIGHUP
        argv, environment = node_command(folder, local_broker, secure, tls.ca, token_file)
        node = Service(argv, env=environment)
        services.append(node)
        _wait(kubectl, f"node/{NODE}", "create")  # at the node's first heartbeat
        _wait(kubectl, f"node/{NODE}", "condition=Ready")
        _wait(kubectl, "device/thermo", "jsonpath={.status.state}=online")
        _wait(kubectl, "device/orphan", "condition=Valid=false")
        _wait(kubectl, "pod/app", "condition=Ready")
        # a desired value set at the edge, by an app on the gateway's broker
        set_at_edge = run_cli("twin", "set", "thermo", "target", "42", "--broker", local_broker.address.url)
        assert set_at_edge.returncode == 0, set_at_edge.stderr
        _wait(kubectl, "device/thermo", "jsonpath={.spec.properties[1].desired.value}=42")
        logs = run_cli(
            "cloud", "logs", "app", "--kubeconfig", str(api.kubeconfig),
            "--data-dir", str(data), "--broker", cloud_broker.address.url,
        )  # fmt: skip
        assert logs.returncode == 0, logs.stderr
        kubectl.run("delete", "pod", "app", "--wait=true", "--timeout=90s", timeout=120)
        # a node that stops answering but keeps its connection: NotReady once its Lease is old
        node.proc.send_signal(signal.SIGSTOP)
        try:
            _wait(kubectl, f"node/{NODE}", "condition=Ready=Unknown")
        finally:
            node.proc.send_signal(signal.SIGCONT)
        _wait(kubectl, f"node/{NODE}", "condition=Ready")
        for service in reversed(services):
            service.stop()
        yield Rehearsal(kubectl, audit_log, node.lines, cloud.lines, logs.stdout)
    finally:
        for service in reversed(services):
            service.stop()
        local_broker.stop()
        cloud_broker.stop()
        api.stop()


def test_a_node_run_by_the_unit_joins_through_mosquitto_over_tls_and_serves_its_devices(
    rehearsal: Rehearsal,
) -> None:
    kubectl = rehearsal.kubectl
    node = json.loads(kubectl.run("get", "node", NODE, "-o", "json").stdout)
    assert node["metadata"]["labels"]["node-role.kubernetes.io/edge"] == ""
    device = json.loads(kubectl.run("get", "device", "thermo", "-o", "json").stdout)
    reported = {t["propertyName"]: t["reported"]["value"] for t in device["status"]["twins"]}
    assert reported["temperature"] == "21.5" and reported["target"] == "42"
    assert rehearsal.logs.strip() == "hello s3cret"
    assert not any("Traceback" in line for line in rehearsal.node_output + rehearsal.cloud_output)


def _requests(audit_log: Path) -> set[tuple[str, str, str, str]]:
    """(API group, resource[/subresource], verb, namespace) of every request but kubectl's."""
    found = set()
    for line in audit_log.read_text().splitlines():
        event = json.loads(line)
        if event["userAgent"].startswith("kubectl/"):
            continue  # the test's own requests
        ref = event["objectRef"]
        resource = f"{ref['resource']}/{ref['subresource']}" if "subresource" in ref else ref["resource"]
        found.add((ref["apiGroup"], resource, event["verb"], ref.get("namespace", "")))
    return found


def _granted(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {
        (g, r, v)
        for rule in rules
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }


def test_the_rbac_grants_exactly_what_cloud_sync_asks_of_the_api(rehearsal: Rehearsal) -> None:
    objects = manifests()
    cluster = _granted(objects[("ClusterRole", "edgetwin-cloud")]["rules"])
    role = objects[("Role", "edgetwin-cloud-leases")]
    in_namespace = {role["metadata"]["namespace"]: _granted(role["rules"])}
    requests = _requests(rehearsal.audit_log)
    assert requests, "cloud-sync made no request"
    denied = {r for r in requests if r[:3] not in cluster and r[:3] not in in_namespace.get(r[3], set())}
    assert not denied, f"cloud-sync would be refused: {sorted(denied)}"
    used = {r[:3] for r in requests}
    unused = (cluster - used) | {
        g for ns, granted in in_namespace.items() for g in granted if (*g, ns) not in requests
    }
    assert not unused, f"granted but never used (least privilege): {sorted(unused)}"
    # and the grants reach cloud-sync's pod: its service account, bound to both
    account = objects[("Deployment", "edgetwin-cloud")]["spec"]["template"]["spec"]["serviceAccountName"]
    for binding in (("ClusterRoleBinding", "edgetwin-cloud"), ("RoleBinding", "edgetwin-cloud-leases")):
        subjects = objects[binding]["subjects"]
        assert {"kind": "ServiceAccount", "name": account, "namespace": "edgetwin"} in subjects, binding
    assert objects[("ServiceAccount", account)]["metadata"]["namespace"] == "edgetwin"
