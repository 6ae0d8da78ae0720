"""``edgetwin node --cloud`` as a user runs it, in its own process: offline autonomy across ``kill -9``,
a refused login, heartbeats and the will, and the command line's refusals."""

from __future__ import annotations

import asyncio
import platform
from pathlib import Path

import pytest

from edgemqtt.broker import password_entry
from tests.fixtures.brokers import Mosquitto, SecureFiles, mosquitto_binary
from tests.fixtures.processes import run_cli, service
from tests.node_agent.cloud_peer import CloudPeer, thermo, thermo_model
from tests.node_agent.nodes import TOKEN
from twin.client import TwinClient
from twin.link import EdgeDesired, Heartbeat, Report, node_password
from twin.registry import NodeDevices
from twin.store import TwinStore

MODEL = thermo_model()
T1 = "default/t1"


def node_args(node: str, local: Mosquitto, cloud: Mosquitto, data_dir: Path, *extra: str) -> list[str]:
    return [
        "node", node,
        "--broker", local.address.url,
        "--cloud", cloud.address.url,
        "--data-dir", str(data_dir),
        "--heartbeat", "0.3",
        "--resend", "0.5",
        *extra,
    ]  # fmt: skip


async def stored_reported(data_dir: Path, device_id: str, name: str, value: str) -> None:
    """Until the twin store on disk holds ``value`` (reported values are written behind)."""
    async with asyncio.timeout(10):
        while True:
            twin = TwinStore(data_dir).load().twins.get(device_id)
            actual = twin.properties[name].actual if twin is not None and name in twin.properties else None
            if actual is not None and actual.value == value:
                return
            await asyncio.sleep(0.05)


async def test_a_node_killed_while_the_cloud_is_down_serves_from_disk_at_once_and_then_sends_what_it_owes(
    mosquitto: Mosquitto, private_mosquitto: Mosquitto, tmp_path: Path, prefix: str
) -> None:
    node, data = f"{prefix}-node", tmp_path / "data"
    device_id = f"default/{prefix}-t1"
    peer = CloudPeer(private_mosquitto.address, node=node)
    peer.assign(thermo(f"{prefix}-t1", node=node, report_ms=100), MODEL, {"target": ("22", 1, 0)})
    args = node_args(node, mosquitto, private_mosquitto, data, "--token", TOKEN)
    async with peer.running():
        with service(*args) as first:
            await peer.wait_for("report", lambda r: device_id in r.devices, timeout=30)
            private_mosquitto.stop()
            async with TwinClient(mosquitto.address) as app:
                await app.set_desired(device_id, {"target": "25"})
                await app.report(device_id, {"temp": "30.5"})
            await stored_reported(data, device_id, "temp", "30.5")
            first.kill()
        with service(*args) as second:
            await asyncio.to_thread(second.wait_for, "twin service for 1 devices")
            async with TwinClient(mosquitto.address) as app:
                state = await app.get(device_id)  # the cloud is still down
            assert (state["target"].desired, state["temp"].reported) == ("25", "30.5")
            cut = len(peer.received)
            private_mosquitto.start()
            desired: EdgeDesired = await peer.wait_for("desired", after=cut, timeout=30)
            report: Report = await peer.wait_for(
                "report",
                lambda r: device_id in r.devices and "temp" in r.devices[device_id].twins,
                after=cut,
                timeout=30,
            )
    target = desired.devices[device_id]["target"]
    assert (target.value, target.cloud, target.edge) == ("25", 1, 1)
    assert report.devices[device_id].twins["temp"].value == "30.5"
    assert peer.devices[device_id].desired["target"].value == "25"


async def test_a_node_with_a_wrong_token_is_refused_and_keeps_serving_its_devices_locally(
    mosquitto: Mosquitto, tmp_path: Path, prefix: str
) -> None:
    node, data = f"{prefix}-node", tmp_path / "data"
    passwords = tmp_path / "passwords"
    passwords.write_text(password_entry(node, node_password(TOKEN, node)) + "\n")
    cloud = Mosquitto(mosquitto_binary(), tmp_path, f"allow_anonymous false\npassword_file {passwords}\n")
    cloud.start()
    async with TwinStore(data) as store:  # what an earlier run left in the node's store
        await NodeDevices(node, store).define(
            {MODEL.key: MODEL}, {f"default/{prefix}-t1": thermo(f"{prefix}-t1", node=node)}
        )
    try:
        with service(*node_args(node, mosquitto, cloud, data, "--token", "not-the-token")) as running:
            refused = await asyncio.to_thread(running.wait_for, "refused the connection")
            async with TwinClient(mosquitto.address) as app:
                state = await app.get(f"default/{prefix}-t1")
    finally:
        cloud.stop()
    assert "ERROR" in refused and f"user {node!r}" in refused and "not authorised" in refused
    assert "trying again every 10 s" in refused
    assert sum("refused the connection" in line for line in running.lines) == 1  # logged once
    assert "temp" in state


async def test_heartbeats_carry_node_info_and_a_killed_node_leaves_its_will(
    mosquitto: Mosquitto, private_mosquitto: Mosquitto, tmp_path: Path, prefix: str
) -> None:
    node = f"{prefix}-node"
    peer = CloudPeer(private_mosquitto.address, node=node)
    async with peer.running():
        with service(*node_args(node, mosquitto, private_mosquitto, tmp_path, "--token", TOKEN)) as running:
            beat: Heartbeat = await peer.wait_for("heartbeat", timeout=30)
            second: Heartbeat = await peer.wait_for("heartbeat", lambda b: b.sent_at > beat.sent_at)
            running.kill()
            will: Heartbeat = await peer.wait_for("heartbeat", lambda b: not b.online)
    assert beat.online and second.online
    info = beat.node_info
    assert info.kernelVersion == platform.release() and info.architecture and info.bootID
    assert {"cpu", "memory", "pods"} <= set(beat.capacity)
    assert [a.type for a in beat.addresses][-1] == "Hostname"
    assert not will.online


def test_node_help_explains_the_cloud_options() -> None:
    result = run_cli("node", "--help")
    assert result.returncode == 0
    for option in ("--cloud", "--token", "--token-file", "--cloud-tls-ca", "--cloud-tls-cert", "--heartbeat"):
        assert option in result.stdout
    assert "EDGETWIN_TOKEN" in result.stdout and "--metrics-port" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--cloud", "mqtt://127.0.0.1:1", "--token", "x", "--devices", "d.yaml"],
            "either --cloud or --devices",
        ),
        (["--cloud", "mqtt://127.0.0.1:1"], "--cloud needs the cluster's join token"),
        (["--token", "x"], "--token and --token-file are for joining a cloud: add --cloud URL"),
        (["--cloud", "mqtt://127.0.0.1:1", "--token", "x", "--heartbeat", "0"], "--heartbeat must be"),
        (
            ["--cloud", "mqtt://127.0.0.1:1", "--token-file", "/nonexistent/token"],
            "cannot read the join token",
        ),
        (["--cloud", "ftp://cloud", "--token", "x"], "unsupported broker URL scheme"),
        (["--cloud", "mqtt://127.0.0.1:1", "--token", "x", "--cloud-tls-ca", "ca.pem"], "TLS CA file ca.pem"),
        (["--metrics-port", "70000"], "--metrics-port must be a port number"),
    ],
    ids=["with-devices", "no-token", "token-alone", "heartbeat", "token-file", "scheme", "cloud-ca", "port"],
)
def test_the_command_refuses_what_it_cannot_run_with_one_line(
    args: list[str], message: str, tmp_path: Path
) -> None:
    result = run_cli("node", "n1", "--data-dir", str(tmp_path), *args)
    assert result.returncode != 0
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_the_token_may_come_from_a_file_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edgetwin.cli import build_parser
    from edgetwin.commands.node import cloud_settings

    parser = build_parser()
    token_file = tmp_path / "token"
    token_file.write_text("from-the-file\n")
    base = ["node", "n1", "--cloud", "mqtt://127.0.0.1:1"]
    from_file = cloud_settings(parser.parse_args([*base, "--token-file", str(token_file)]))
    monkeypatch.setenv("EDGETWIN_TOKEN", "from-the-environment")
    from_env = cloud_settings(parser.parse_args(base))
    given = cloud_settings(parser.parse_args([*base, "--token", "given"]))
    assert from_file is not None and from_file.token == "from-the-file"
    assert from_env is not None and from_env.token == "from-the-environment"
    assert given is not None and given.token == "given"
    assert "from-the" not in repr(from_env)  # never printed


def test_the_cloud_has_tls_files_of_its_own(secure_files: SecureFiles) -> None:
    from edgetwin.cli import build_parser
    from edgetwin.commands._broker import broker_address
    from edgetwin.commands.node import cloud_settings

    ca = secure_files.tls.ca
    args = build_parser().parse_args(
        ["node", "n1", "--cloud", "mqtts://127.0.0.1:8883", "--token", "t", "--cloud-tls-ca", str(ca)]
    )
    cloud = cloud_settings(args)
    assert cloud is not None and cloud.broker.tls and cloud.broker.ca_file == ca
    assert broker_address(args).ca_file is None  # the local broker's are --tls-*
