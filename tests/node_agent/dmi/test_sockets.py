"""The DMI socket path: KubeEdge's directory form, stale sockets taken over, live ones never."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from node_agent.dmi.sockets import SocketUnusable, grpc_target, prepare_socket, resolve_socket


def test_a_directory_means_its_dmi_sock_as_kubeedge_reads_dmi_sock_path(socket_dir: Path) -> None:
    assert resolve_socket(socket_dir) == socket_dir / "dmi.sock"
    assert resolve_socket(socket_dir / "edge.sock") == socket_dir / "edge.sock"


@pytest.mark.parametrize(
    ("announced", "target"),
    [
        ("/etc/kubeedge/m.sock", "unix:/etc/kubeedge/m.sock"),
        ("unix:///x/m.sock", "unix:/x/m.sock"),
        ("unix:m.sock", "unix:m.sock"),
    ],
)
def test_mapper_socket_addresses_become_grpc_targets(announced: str, target: str) -> None:
    assert grpc_target(announced) == target


def test_a_stale_socket_is_removed_and_a_live_one_is_refused(socket_dir: Path) -> None:
    path = socket_dir / "sub" / "dmi.sock"
    prepare_socket(path)  # creates the folder
    assert path.parent.is_dir()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as live:
        live.bind(str(path))
        live.listen()
        with pytest.raises(SocketUnusable, match="in use by another process"):
            prepare_socket(path)
    assert path.exists()  # closed without unlinking: what a killed agent leaves
    prepare_socket(path)
    assert not path.exists()


def test_a_path_that_is_no_socket_or_too_long_is_refused(socket_dir: Path) -> None:
    regular = socket_dir / "dmi.sock"
    regular.write_text("not a socket")
    with pytest.raises(SocketUnusable, match="not a socket"):
        prepare_socket(regular)
    with pytest.raises(SocketUnusable, match="longer than"):
        prepare_socket(socket_dir / ("x" * 120) / "dmi.sock")
