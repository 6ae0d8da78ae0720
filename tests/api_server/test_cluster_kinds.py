"""Services, Deployments and RBAC on the embedded API server, driven by the real kubectl.

What deploy manifests need from a cluster and what ``kubectl cluster-info`` asks for: each kind
applied, re-applied, listed with the columns a cluster prints, refused where a cluster refuses it,
and deleted. No controller runs: a Deployment stays at 0 ready replicas, a Service routes nothing.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from tests.fixtures.apiserver import ApiServerThread, Kubectl, make_kubectl

SERVICE = """
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default, labels: {app: web}}
spec:
  selector: {app: web, tier: front}
  ports:
    - {name: http, port: 80, targetPort: 8080}
    - {name: metrics, port: 9464}
"""
BROKER = """
apiVersion: v1
kind: Service
metadata: {name: broker, namespace: default}
spec:
  type: LoadBalancer
  selector: {app: broker}
  ports:
    - {name: mqtts, port: 8883, targetPort: mqtts}
"""
DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web, tier: front}}
    spec:
      containers:
        - {name: web, image: "registry.example.com/web:1.0", ports: [{containerPort: 8080}]}
        - {name: sidecar, image: busybox}
"""
CLUSTER_ROLE = """
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: device-reader}
rules:
  - {apiGroups: [devices.kubeedge.io], resources: [devices, devices/status], verbs: [get, list, watch]}
"""
CLUSTER_ROLE_BINDING = """
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: device-reader}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: device-reader}
subjects:
  - {kind: ServiceAccount, name: reader, namespace: default}
  - {kind: User, name: alice, apiGroup: rbac.authorization.k8s.io}
  - {kind: Group, name: operators, apiGroup: rbac.authorization.k8s.io}
"""
ROLE = """
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: lease-writer, namespace: kube-node-lease}
rules:
  - {apiGroups: [coordination.k8s.io], resources: [leases], verbs: [get, create, update, patch]}
"""
ROLE_BINDING = """
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: lease-writer, namespace: kube-node-lease}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: lease-writer}
subjects: [{kind: ServiceAccount, name: reader, namespace: default}]
"""
#: manifest -> (kubectl's name for the object, the namespace it lives in or None)
KINDS = {
    "service": (SERVICE, "service/web", "default"),
    "deployment": (DEPLOYMENT, "deployment.apps/web", "default"),
    "clusterrole": (CLUSTER_ROLE, "clusterrole.rbac.authorization.k8s.io/device-reader", None),
    "clusterrolebinding": (
        CLUSTER_ROLE_BINDING,
        "clusterrolebinding.rbac.authorization.k8s.io/device-reader",
        None,
    ),
    "role": (ROLE, "role.rbac.authorization.k8s.io/lease-writer", "kube-node-lease"),
    "rolebinding": (ROLE_BINDING, "rolebinding.rbac.authorization.k8s.io/lease-writer", "kube-node-lease"),
}


@pytest.fixture(scope="module")
def kubectl(module_apiserver: ApiServerThread, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return make_kubectl(module_apiserver, tmp_path_factory.mktemp("kubectl-cache"))


def rows(out: str) -> list[list[str]]:
    """A table printed by kubectl, split on runs of spaces (cells here hold no spaces)."""
    return [line.split() for line in out.splitlines() if line.strip()]


def get_json(kubectl: Kubectl, *args: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(kubectl.run("get", *args, "-o", "json").stdout)
    return loaded


def test_cluster_info_names_the_control_plane_and_the_cluster_services(
    kubectl: Kubectl, module_apiserver: ApiServerThread
) -> None:
    url = module_apiserver.url
    first = kubectl.run("cluster-info").stdout
    assert first.splitlines()[0] == f"Kubernetes control plane is running at {url}"
    kubectl.run(
        "apply",
        "-f",
        "-",
        input="""
apiVersion: v1
kind: Service
metadata:
  name: edgetwin-dashboard
  namespace: kube-system
  labels: {kubernetes.io/cluster-service: "true"}
spec:
  selector: {app: edgetwin-cloud}
  ports: [{name: http, port: 8090}]
""",
    )
    lines = kubectl.run("cluster-info").stdout.splitlines()
    assert lines[:2] == [
        f"Kubernetes control plane is running at {url}",
        f"edgetwin-dashboard is running at {url}/api/v1/namespaces/kube-system/services/"
        "edgetwin-dashboard:http/proxy",
    ]
    kubectl.run("delete", "service", "edgetwin-dashboard", "-n", "kube-system")


def test_the_new_kinds_are_discoverable_with_their_short_names(kubectl: Kubectl) -> None:
    out = kubectl.run("api-resources", "--no-headers").stdout
    found = {(r[0], r[1] if len(r) == 5 else "") for r in rows(out)}
    assert {("services", "svc"), ("deployments", "deploy"), ("clusterroles", "")} <= found
    assert {("clusterrolebindings", ""), ("roles", ""), ("rolebindings", "")} <= found


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_kind_applies_reapplies_unchanged_reads_back_and_deletes(kubectl: Kubectl, kind: str) -> None:
    manifest, name, namespace = KINDS[kind]
    ns = ["-n", namespace] if namespace else []
    assert kubectl.run("apply", "-f", "-", input=manifest).stdout.strip() == f"{name} created"
    assert kubectl.run("apply", "-f", "-", input=manifest).stdout.strip() == f"{name} unchanged"
    dry = kubectl.run("apply", "--dry-run=server", "-f", "-", input=manifest).stdout.strip()
    assert dry == f"{name} unchanged (server dry run)"
    stored = get_json(kubectl, name, *ns)
    sent = yaml.safe_load(manifest)
    assert stored["kind"] == sent["kind"] and stored["apiVersion"] == sent["apiVersion"]
    for key in ("rules", "roleRef"):
        if key in sent:
            assert stored[key] == sent[key]
    resource, short = name.split("/")
    assert kubectl.run("delete", name, *ns).stdout.startswith(f'{resource} "{short}" deleted')
    gone = kubectl.run("get", name, *ns, check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr


def test_get_svc_prints_type_cluster_ip_external_ip_and_ports(kubectl: Kubectl) -> None:
    kubectl.run("apply", "-f", "-", input=SERVICE + "---" + BROKER)
    table = rows(kubectl.run("get", "svc", "web", "broker").stdout)
    assert table[0] == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    web, broker = {r[0]: r for r in table[1:]}["web"], {r[0]: r for r in table[1:]}["broker"]
    assert web[1] == "ClusterIP" and web[3] == "<none>" and web[4] == "80/TCP,9464/TCP"
    assert web[2].startswith("10.96.")
    node_port = get_json(kubectl, "svc", "broker")["spec"]["ports"][0]["nodePort"]
    assert broker[1:2] + broker[3:5] == ["LoadBalancer", "<pending>", f"8883:{node_port}/TCP"]
    assert 30000 <= node_port <= 32767
    wide = rows(kubectl.run("get", "svc", "web", "-o", "wide").stdout)
    assert wide[0][-1] == "SELECTOR" and wide[1][-1] == "app=web,tier=front"
    kubectl.run("delete", "svc", "web", "broker")


def test_a_service_keeps_its_cluster_ip_and_port_defaults_across_applies(kubectl: Kubectl) -> None:
    kubectl.run("apply", "-f", "-", input=SERVICE)
    before = get_json(kubectl, "svc", "web")["spec"]
    assert before["type"] == "ClusterIP" and before["sessionAffinity"] == "None"
    assert before["clusterIPs"] == [before["clusterIP"]]
    assert [(p["port"], p["targetPort"], p["protocol"]) for p in before["ports"]] == [
        (80, 8080, "TCP"),
        (9464, 9464, "TCP"),
    ]
    changed = SERVICE.replace("{name: metrics, port: 9464}", "{name: metrics, port: 9465}")
    assert kubectl.run("apply", "-f", "-", input=changed).stdout.strip() == "service/web configured"
    after = get_json(kubectl, "svc", "web")["spec"]
    assert after["clusterIP"] == before["clusterIP"]  # kept, though the manifest never names it
    assert [p["port"] for p in after["ports"]] == [80, 9465]  # merged by port, not by containerPort
    kubectl.run("delete", "svc", "web")


def test_a_taken_cluster_ip_or_a_node_port_on_a_cluster_ip_service_is_refused_naming_the_field(
    kubectl: Kubectl,
) -> None:
    kubectl.run("apply", "-f", "-", input=SERVICE)
    taken = get_json(kubectl, "svc", "web")["spec"]["clusterIP"]
    clash = f"""
apiVersion: v1
kind: Service
metadata: {{name: clash}}
spec:
  clusterIP: {taken}
  ports: [{{port: 80, nodePort: 30500}}]
"""
    result = kubectl.run("apply", "-f", "-", input=clash, check=False)
    assert result.returncode != 0
    assert f"failed to allocate IP {taken}: provided IP is already allocated" in result.stderr
    assert "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'" in result.stderr
    outside = clash.replace(taken, "192.168.1.1").replace(", nodePort: 30500", "")
    result = kubectl.run("apply", "-f", "-", input=outside, check=False)
    assert "is not in the valid range. The range of valid IPs is 10.96.0.0/12" in result.stderr
    kubectl.run("delete", "svc", "web")


def test_a_deployment_gets_a_clusters_defaults_and_shows_no_ready_replicas(kubectl: Kubectl) -> None:
    kubectl.run("apply", "-f", "-", input=DEPLOYMENT)
    deployment = get_json(kubectl, "deployment", "web")
    spec = deployment["spec"]
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
    }
    assert (spec["revisionHistoryLimit"], spec["progressDeadlineSeconds"]) == (10, 600)
    pod = spec["template"]["spec"]
    assert (pod["restartPolicy"], pod["dnsPolicy"], pod["terminationGracePeriodSeconds"]) == (
        "Always",
        "ClusterFirst",
        30,
    )
    assert [c["imagePullPolicy"] for c in pod["containers"]] == ["IfNotPresent", "Always"]
    assert deployment["status"] == {}
    table = rows(kubectl.run("get", "deploy", "web", "-o", "wide").stdout)
    assert table[0] == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"]
    assert table[1][:4] == ["web", "0/2", "0", "0"]
    assert table[1][5:] == ["web,sidecar", "registry.example.com/web:1.0,busybox", "app=web"]
    assert "deployment.apps/web" in kubectl.run("get", "all", "-o", "name").stdout
    kubectl.run("delete", "deploy", "web")


def test_a_deployment_a_cluster_would_refuse_is_refused_naming_each_field(kubectl: Kubectl) -> None:
    bad = DEPLOYMENT.replace("matchLabels: {app: web}", "matchLabels: {app: api}").replace(
        ", image: busybox", ""
    )
    result = kubectl.run("apply", "-f", "-", input=bad, check=False)
    assert result.returncode != 0
    assert "`selector` does not match template `labels`" in result.stderr
    assert "spec.template.spec.containers[1].image: Required value" in result.stderr
    kubectl.run("apply", "-f", "-", input=DEPLOYMENT)
    moved = kubectl.run(
        "patch", "deploy", "web", "--type=merge", "-p",
        '{"spec":{"selector":{"matchLabels":{"app":"web","tier":"front"}}}}',
        check=False,
    )  # fmt: skip
    assert moved.returncode != 0 and "spec.selector: Invalid value: field is immutable" in moved.stderr
    kubectl.run("delete", "deploy", "web")


def test_bindings_show_their_role_and_subjects_and_their_role_ref_cannot_change(kubectl: Kubectl) -> None:
    kubectl.run("apply", "-f", "-", input=CLUSTER_ROLE + "---" + CLUSTER_ROLE_BINDING)
    table = rows(kubectl.run("get", "clusterrolebinding", "device-reader", "-o", "wide").stdout)
    assert table[0] == ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"]
    assert table[1][:2] == ["device-reader", "ClusterRole/device-reader"]
    assert table[1][3:] == ["alice", "operators", "default/reader"]
    group = "rbac.authorization.k8s.io"
    defaulted = CLUSTER_ROLE_BINDING.replace(f", apiGroup: {group}}}", "}")
    kubectl.run(
        "create",
        "-f",
        "-",
        input=defaulted.replace("metadata: {name: device-reader}", "metadata: {name: defaulted}"),
    )
    subjects = get_json(kubectl, "clusterrolebinding", "defaulted")["subjects"]
    assert [s.get("apiGroup") for s in subjects] == [None, group, group]  # as kube-apiserver defaults them
    roles = rows(kubectl.run("get", "clusterrole", "device-reader").stdout)
    assert roles[0] == ["NAME", "CREATED", "AT"] and roles[1][1].endswith("Z")
    changed = CLUSTER_ROLE_BINDING.replace(
        "kind: ClusterRole, name: device-reader}", "kind: ClusterRole, name: other}"
    )
    result = kubectl.run("apply", "-f", "-", input=changed, check=False)
    assert result.returncode != 0 and "roleRef: Invalid value: cannot change roleRef" in result.stderr
    kubectl.run(
        "delete",
        "clusterrolebinding/defaulted",
        "clusterrolebinding/device-reader",
        "clusterrole/device-reader",
    )


def test_rbac_objects_a_cluster_would_refuse_are_refused_naming_each_field(kubectl: Kubectl) -> None:
    no_verbs = CLUSTER_ROLE.replace(", verbs: [get, list, watch]", "")
    result = kubectl.run("apply", "-f", "-", input=no_verbs, check=False)
    assert "rules[0].verbs: Required value" in result.stderr
    namespaceless = CLUSTER_ROLE_BINDING.replace(", namespace: default", "")
    result = kubectl.run("apply", "-f", "-", input=namespaceless, check=False)
    assert "subjects[0].namespace: Required value" in result.stderr
    wrong_kind = ROLE_BINDING.replace("kind: ServiceAccount", "kind: Robot")
    result = kubectl.run("apply", "-f", "-", input=wrong_kind, check=False)
    assert 'subjects[0].kind: Unsupported value: "Robot"' in result.stderr
