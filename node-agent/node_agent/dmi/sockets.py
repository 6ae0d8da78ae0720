"""The Unix socket paths of DMI: where the agent serves, and taking over a stale socket safely.

KubeEdge's ``dmiSockPath`` names a directory and its socket is ``<dir>/dmi.sock``; mappers name the
socket file itself (``edgecore_sock: /etc/kubeedge/dmi.sock``). ``--dmi-socket`` accepts both. A
socket file left by an agent that was killed is removed; one that still answers belongs to a
running process and is never taken over. No gRPC here.
"""

from __future__ import annotations

import contextlib
import socket
import stat
from pathlib import Path

from twin.errors import PermanentError

__all__ = [
    "DEFAULT_SOCKET",
    "SocketUnusable",
    "grpc_target",
    "prepare_socket",
    "remove_socket",
    "resolve_socket",
]

#: KubeEdge's default, what mapper-framework mappers dial unless their config.yaml says otherwise.
DEFAULT_SOCKET = Path("/etc/kubeedge/dmi.sock")

# sun_path holds 108 bytes including the terminating NUL on Linux.
_MAX_PATH = 107


class SocketUnusable(PermanentError):
    """The DMI socket path cannot be served: in use, not a socket, too long, or not writable."""


def resolve_socket(path: Path) -> Path:
    """The socket file for ``--dmi-socket PATH``: ``PATH/dmi.sock`` when PATH is a directory."""
    return path / "dmi.sock" if path.is_dir() else path


def grpc_target(path: str | Path) -> str:
    """A gRPC target for a socket path as mappers announce it (``/x.sock``, ``unix:///x.sock``...)."""
    text = str(path)
    for prefix in ("unix://", "unix:"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
            break
    return f"unix:{text}"


def prepare_socket(path: Path) -> None:
    """Make ``path`` ready to be bound; ``SocketUnusable`` with the reason if it cannot be."""
    if len(str(path).encode()) > _MAX_PATH:
        raise SocketUnusable(f"DMI socket path {path} is longer than {_MAX_PATH} bytes; choose a shorter one")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise SocketUnusable(f"DMI socket {path}: {exc.strerror or exc}") from exc
    if not stat.S_ISSOCK(mode):
        raise SocketUnusable(
            f"DMI socket path {path} exists and is not a socket; remove it or choose another"
        )
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError:
            pass  # nobody answers: left behind by a process that is gone
        else:
            raise SocketUnusable(f"DMI socket {path} is in use by another process (another node agent?)")
    remove_socket(path)


def remove_socket(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
