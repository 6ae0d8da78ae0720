"""``edgetwin cloud`` and its dashboard as a user runs them: on by default on one machine, the address
with its token in the banner, opt-in against a cluster, a port in use named with its flag."""

from __future__ import annotations

import asyncio
import re
import socket
import stat
import urllib.error
import urllib.request
from pathlib import Path

from tests.fixtures.apiserver import ApiServerThread
from tests.fixtures.processes import run_cli, service
from tests.fixtures.tools import free_port


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()


async def test_on_one_machine_the_dashboard_is_on_and_its_address_with_the_token_is_printed(
    tmp_path: Path,
) -> None:
    data = tmp_path / "cloud"
    port = free_port()
    with service(
        "cloud", "--data-dir", str(data), "--mqtt-port", str(free_port()),
        "--apiserver-port", str(free_port()), "--dashboard-port", str(port),
    ) as cloud:  # fmt: skip
        line = await asyncio.to_thread(cloud.wait_for, "  dashboard ")
        await asyncio.to_thread(cloud.wait_for, "Ctrl-C stops it")
        url = re.search(r"dashboard\s+(\S+)$", line).group(1)  # type: ignore[union-attr]
        token = (data / "dashboard-token").read_text().strip()
        assert url == f"http://127.0.0.1:{port}/?token={token}"
        assert stat.S_IMODE((data / "dashboard-token").stat().st_mode) == 0o600
        status, body = await asyncio.to_thread(fetch, f"http://127.0.0.1:{port}/api/state")
        assert status == 401
        status, body = await asyncio.to_thread(
            fetch, f"http://127.0.0.1:{port}/api/state", {"Authorization": f"Bearer {token}"}
        )
        assert (status, body) == (200, b'{"devices": [], "nodes": [], "events": []}')
    # The token is kept: the next start prints the same address.
    with service(
        "cloud", "--data-dir", str(data), "--mqtt-port", str(free_port()),
        "--apiserver-port", str(free_port()), "--dashboard-port", str(port),
    ) as again:  # fmt: skip
        assert (await asyncio.to_thread(again.wait_for, "  dashboard ")).endswith(url)


async def test_against_a_cluster_the_dashboard_is_off_unless_asked_for(
    tmp_path: Path, apiserver_factory: type[ApiServerThread]
) -> None:
    server = apiserver_factory()
    with service(
        "cloud", "--data-dir", str(tmp_path / "cloud"), "--kubeconfig", str(server.kubeconfig),
        "--mqtt-port", str(free_port()),
    ) as cloud:  # fmt: skip
        await asyncio.to_thread(cloud.wait_for, "Ctrl-C stops it")
        assert not any("dashboard" in line for line in cloud.lines)
    assert not (tmp_path / "cloud" / "dashboard-token").exists()


def test_a_dashboard_port_in_use_exits_with_one_clear_line_naming_the_flag(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(
            "cloud", "--data-dir", str(tmp_path / "c"), "--mqtt-port", str(free_port()),
            "--apiserver-port", str(free_port()), "--dashboard-port", str(port),
        )  # fmt: skip
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("edgetwin cloud: error:")]
    assert len(lines) == 1, result.stderr
    assert f"127.0.0.1:{port}" in lines[0]
    assert "--dashboard-port" in lines[0]
    assert "Traceback" not in result.stderr
