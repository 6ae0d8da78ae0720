"""``edgetwin cloud`` and ``edgetwin cloud token`` as a user runs them: real processes, real exit codes."""

from __future__ import annotations

import asyncio
import re
import socket
import stat
from pathlib import Path

from edgemqtt import BrokerAddress
from edgemqtt.broker import PasswordFile
from tests.cloud_sync.conftest import MODEL, device_yaml
from tests.cloud_sync.peer import NodePeer
from tests.fixtures.apiserver import ApiServerThread, Kubectl, kubectl_binary
from tests.fixtures.processes import run_cli, service
from tests.fixtures.tools import free_port
from twin.link import node_password


def test_cloud_help_explains_every_option() -> None:
    result = run_cli("cloud", "--help")
    assert result.returncode == 0
    for option in (
        "--broker", "--data-dir", "--kubeconfig", "--admit", "--metrics-port", "--broker-reload-command",
        "--tls-ca", "--tls-cert", "--tls-key", "--mqtt-port", "--grace", "token", "--dashboard-port",
        "--dashboard-host", "--no-dashboard",
    ):  # fmt: skip
        assert option in result.stdout
    assert "embedded API server" in result.stdout
    token_help = run_cli("cloud", "token", "--help")
    assert token_help.returncode == 0
    assert "--rotate" in token_help.stdout


def test_cloud_token_makes_a_private_token_once_and_rotate_makes_a_new_one(tmp_path: Path) -> None:
    data = tmp_path / "cloud"
    first = run_cli("cloud", "token", "--data-dir", str(data))
    assert first.returncode == 0, first.stderr
    token = first.stdout.strip()
    assert len(token) >= 32
    assert stat.S_IMODE((data / "token").stat().st_mode) == 0o600
    assert stat.S_IMODE((data / "broker" / "passwd").stat().st_mode) == 0o600
    assert run_cli("cloud", "token", "--data-dir", str(data)).stdout.strip() == token
    (data / "broker" / "acl").write_text(
        "user edgetwin-cloud\ntopic edgetwin/v1/#\nuser gw-1\ntopic edgetwin/v1/nodes/gw-1/#\n"
    )
    rotated = run_cli("cloud", "token", "--data-dir", str(data), "--rotate")
    assert rotated.returncode == 0, rotated.stderr
    new = rotated.stdout.strip()
    assert new != token
    assert "admit 1 nodes" in rotated.stderr
    passwords = PasswordFile(data / "broker" / "passwd")
    assert passwords.check("gw-1", node_password(new, "gw-1").encode())
    assert not passwords.check("gw-1", node_password(token, "gw-1").encode())


def test_cloud_with_an_unusable_kubeconfig_exits_with_one_clear_line(tmp_path: Path) -> None:
    result = run_cli("cloud", "--data-dir", str(tmp_path / "c"), "--kubeconfig", str(tmp_path / "missing"))
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("edgetwin cloud: error:")]
    assert len(lines) == 1, result.stderr
    assert "missing" in lines[0]
    assert "Traceback" not in result.stderr


def test_cloud_with_its_broker_port_taken_exits_with_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(
            "cloud",
            "--data-dir",
            str(tmp_path / "c"),
            "--mqtt-port",
            str(port),
            "--apiserver-port",
            str(free_port()),
        )
    assert result.returncode != 0
    assert "--mqtt-port" in result.stderr
    assert "Traceback" not in result.stderr


async def test_cloud_without_a_kubeconfig_serves_kubectl_and_nodes_on_its_embedded_api_server_and_broker(
    tmp_path: Path,
) -> None:
    data = tmp_path / "cloud"
    mqtt_port = free_port()
    with service(
        "cloud", "--data-dir", str(data), "--mqtt-port", str(mqtt_port), "--apiserver-port", str(free_port()),
        "--admit", "gw-1", "--dashboard-port", str(free_port()),
    ) as cloud:  # fmt: skip
        await asyncio.to_thread(cloud.wait_for, "Ctrl-C stops it")
        output = "\n".join(cloud.lines)
        kubeconfig = Path(re.search(r"Kubernetes API  embedded, kubeconfig (\S+)", output).group(1))  # type: ignore[union-attr]
        token = re.search(r"^  join token\s+(\S+)$", output, re.MULTILINE).group(1)  # type: ignore[union-attr]
        assert f"--cloud mqtt://127.0.0.1:{mqtt_port} --token {token}" in output
        kubectl = Kubectl(kubectl_binary(), kubeconfig, tmp_path / "kube-cache")
        await asyncio.to_thread(
            kubectl.run, "apply", "-f", "-", input=MODEL + "---" + device_yaml("thermo-1", "gw-1")
        )
        stamped = r"--for=jsonpath={.metadata.annotations.twin\.edgetwin\.io/desired-versions}"
        await asyncio.to_thread(kubectl.run, "wait", "device/thermo-1", stamped, "--timeout=20s")
        async with NodePeer(BrokerAddress("127.0.0.1", mqtt_port), "gw-1", token) as node:
            sync = await node.hello()
            await node.heartbeat()
        assert [a.device.id for a in sync.devices] == ["default/thermo-1"]
        await asyncio.to_thread(kubectl.run, "wait", "node/gw-1", "--for=create", "--timeout=20s")
        table = (await asyncio.to_thread(kubectl.run, "get", "devices")).stdout
        assert table.splitlines()[1].split()[:3] == ["thermo-1", "gw-1", "thermo-model"]
        rotated = await asyncio.to_thread(run_cli, "cloud", "token", "--data-dir", str(data), "--rotate")
        assert "reloads its broker" in rotated.stderr
        await asyncio.to_thread(cloud.wait_for, "embedded MQTT broker reloaded: 2 users")
        cloud.proc.terminate()  # SIGTERM, as a service manager stops it
        assert await asyncio.to_thread(cloud.proc.wait, 30) == 0
    assert not (data / "cloud.pid").exists()


def test_cloud_stops_on_sigterm_before_it_is_ready(
    tmp_path: Path, module_apiserver_with_crds: ApiServerThread
) -> None:
    """Its broker is not there, so it never gets ready; a service manager's SIGTERM still stops it."""
    kubeconfig = str(module_apiserver_with_crds.kubeconfig)
    with service(
        "cloud", "--data-dir", str(tmp_path / "c"), "--kubeconfig", kubeconfig,
        "--broker", f"mqtt://127.0.0.1:{free_port()}",
    ) as cloud:  # fmt: skip
        cloud.wait_for("cannot connect to MQTT broker")
        cloud.proc.terminate()
        assert cloud.proc.wait(30) == 0
    assert not any("edgetwin cloud is up" in line for line in cloud.lines)
