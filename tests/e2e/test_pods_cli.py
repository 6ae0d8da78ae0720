"""Pods with the real command line: ``edgetwin cloud`` (embedded API server, binder on, ``kubectl logs``
through cloud-sync) and ``edgetwin node --pods``, each in its own process, driven by kubectl."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from edgemqtt import BrokerAddress
from tests.fixtures.apiserver import Kubectl, kubectl_binary
from tests.fixtures.processes import run_cli, service
from tests.fixtures.tools import free_port


async def test_a_pod_selected_onto_a_node_started_with_pods_runs_and_kubectl_shows_its_logs(
    tmp_path: Path, embedded_mqtt: BrokerAddress
) -> None:
    cloud_port = free_port()
    cloud_args = ["cloud", "--data-dir", str(tmp_path / "cloud"), "--mqtt-port", str(cloud_port)]
    cloud_args += ["--apiserver-port", str(free_port()), "--admit", "edge-1"]
    with service(*cloud_args) as cloud:
        await asyncio.to_thread(cloud.wait_for, "Ctrl-C stops it")
        output = "\n".join(cloud.lines)
        kubeconfig = Path(re.search(r"Kubernetes API  embedded, kubeconfig (\S+)", output).group(1))  # type: ignore[union-attr]
        token = re.search(r"^  join token\s+(\S+)$", output, re.MULTILINE).group(1)  # type: ignore[union-attr]
        kubectl = Kubectl(kubectl_binary(), kubeconfig, tmp_path / "kube-cache")
        node_args = ["node", "edge-1", "--broker", embedded_mqtt.url, "--data-dir", str(tmp_path / "node")]
        node_args += ["--cloud", f"mqtt://127.0.0.1:{cloud_port}", "--token", token, "--pods"]
        with service(*node_args) as node:
            await asyncio.to_thread(node.wait_for, "pods on the process runtime")
            await asyncio.to_thread(
                kubectl.run, "wait", "node/edge-1", "--for=condition=Ready", "--timeout=60s"
            )
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "hello"},
                "spec": {
                    "nodeSelector": {"kubernetes.io/hostname": "edge-1"},
                    "containers": [
                        {
                            "name": "hello",
                            "image": "busybox",
                            "command": ["sh", "-c", "echo hi there; sleep 1000"],
                        }
                    ],
                },
            }
            await asyncio.to_thread(kubectl.run, "apply", "-f", "-", input=json.dumps(pod))
            await asyncio.to_thread(
                kubectl.run, "wait", "pod/hello", "--for=condition=Ready", "--timeout=60s"
            )
            logs = await asyncio.to_thread(kubectl.run, "logs", "hello")
            runtime = await asyncio.to_thread(
                kubectl.run,
                "get",
                "node",
                "edge-1",
                "-o",
                "jsonpath={.status.nodeInfo.containerRuntimeVersion}",
            )
            await asyncio.to_thread(kubectl.run, "delete", "pod", "hello", "--timeout=60s")
    assert logs.stdout == "hi there\n"
    assert runtime.stdout == "process://edgetwin"


def test_node_help_explains_pods() -> None:
    result = run_cli("node", "--help")
    assert result.returncode == 0
    assert "--pods" in result.stdout and "podman" in result.stdout and "process" in result.stdout


def test_cloud_help_explains_the_binder() -> None:
    result = run_cli("cloud", "--help")
    assert result.returncode == 0
    assert "--binder" in result.stdout and "--no-binder" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--pods"], "--pods needs --cloud"),
        (["--cloud", "mqtt://127.0.0.1:1", "--token", "x", "--pods", "docker"], "invalid choice: 'docker'"),
    ],
    ids=["without-cloud", "unknown-runtime"],
)
def test_node_refuses_pods_it_cannot_run_with_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    result = run_cli("node", "n1", "--data-dir", str(tmp_path), *args)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
