"""``edgetwin node NAME --dmi-socket PATH``: a real agent process serving a framework mapper."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.fixtures.brokers import Mosquitto
from tests.fixtures.dmi import DMI_DEVICES, DmiMapper
from tests.fixtures.processes import run_cli, service
from twin.client import TwinClient


def test_the_node_agent_imports_grpc_only_when_it_serves_dmi() -> None:
    code = (
        "import sys\n"
        "import edgetwin.commands.node, edgetwin.commands.mapper, node_agent, node_agent.dmi\n"
        "from node_agent.dmi import find_rosters\n"
        "find_rosters([])\n"
        "assert 'grpc' not in sys.modules, 'grpc imported'\n"
        "import node_agent.dmi.server\n"
        "assert 'grpc' in sys.modules\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr


async def test_edgetwin_node_with_a_dmi_socket_serves_a_framework_mapper(
    tmp_path: Path, socket_dir: Path, mosquitto: Mosquitto, dmi_mappers: Callable[..., DmiMapper]
) -> None:
    url, data = mosquitto.address.url, tmp_path / "node"
    args = ["node", "edge-node-1", "--broker", url, "--data-dir", str(data), "--devices", str(DMI_DEVICES)]
    # KubeEdge's dmiSockPath form: a directory, the socket is DIR/dmi.sock.
    with service(*args, "--dmi-socket", str(socket_dir)) as node:
        node.wait_for(f"DMI on {socket_dir / 'dmi.sock'}")
        mapper = dmi_mappers(socket_dir / "dmi.sock")
        response = await mapper.start()
        assert len(response.deviceList) == 2
        await mapper.report("boiler", {"temperature": "48.5"})
        async with TwinClient(mosquitto.address) as client, client.subscription("default/boiler") as events:
            state = await client.get("default/boiler")
            while state["temperature"].reported != "48.5":
                await events.get()
                state = await client.get("default/boiler")
        listing = run_cli("mapper", "list", "--data-dir", str(data))
        row = next(line for line in listing.stdout.splitlines() if "sim-mapper" in line).split()
        assert row[:3] == ["sim-mapper", "sim", str(mapper.socket)]
        assert row[3] in ("registered", "online")
    assert not (socket_dir / "dmi.sock").exists()  # removed when the agent stops
    assert "agent not running" in run_cli("mapper", "list", "--data-dir", str(data)).stdout


def test_a_dmi_socket_in_use_stops_the_node_with_a_clear_message(
    tmp_path: Path, socket_dir: Path, mosquitto: Mosquitto
) -> None:
    path = socket_dir / "dmi.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as other:
        other.bind(str(path))
        other.listen()
        result = run_cli(
            "node",
            "n1",
            "--broker",
            mosquitto.address.url,
            "--data-dir",
            str(tmp_path),
            "--dmi-socket",
            str(path),
        )
    assert result.returncode == 2
    assert f"DMI socket {path} is in use by another process" in result.stderr
