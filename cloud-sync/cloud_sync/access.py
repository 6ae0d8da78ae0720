"""Who may use the cloud broker: the join token, and the password file and ACL cloud-sync keeps for it.

In ``--data-dir DIR``:

* ``DIR/token`` (0600): the join token, made at first start; nodes prove they know it;
* ``DIR/broker/passwd`` (0600): mosquitto's password file, ``edgetwin-cloud`` and every node;
* ``DIR/broker/acl`` (0644): mosquitto's ACL, each node in ``edgetwin/v1/nodes/{node}/#``,
  cloud-sync in ``edgetwin/v1/#``;
* ``DIR/broker/cloud-password`` (0600): cloud-sync's own broker password, made at first start;
* ``DIR/dashboard-token`` (0600): what the dashboard's page and API need (``cloud_sync.dashboard``).

A node's password is ``twin.link.node_password(token, node)``, an HMAC of its name with the token:
the token never travels, and a node knows only its own password. The admitted nodes are those the
Devices name in ``spec.nodeName``, the edge Nodes that exist, and the ones named with ``--admit``;
when that set (or the token) changes, both files are written again, each atomically (a temporary
file renamed over the old one, so a broker never reads half a file), and the broker reloads them:
the embedded one in-process, mosquitto through ``--broker-reload-command`` (``pkill -HUP -x
mosquitto``). A reload that fails is tried again with back-off.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

from cloud_sync.checks import valid_node_name
from cloud_sync.retry import DELAYS, Backoff
from edgemqtt import password_entry
from twin.errors import TemporaryError
from twin.link import LINK_PREFIX, node_password

__all__ = ["CLOUD_USER", "AccessFiles", "Admission", "BrokerReload", "BrokerReloadFailed", "reload_command"]

log = logging.getLogger(__name__)

CLOUD_USER = "edgetwin-cloud"
#: Makes the broker read its password file and ACL again.
BrokerReload = Callable[[], Awaitable[None]]


class BrokerReloadFailed(TemporaryError):
    """The broker reload command failed (it is tried again)."""


def _write_private(path: Path, text: str, mode: int) -> None:
    """Write ``text`` to ``path`` atomically, the file having ``mode`` from its first byte."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.chmod(mode)  # the umask may have taken bits away
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


class AccessFiles:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.token_file = data_dir / "token"
        self.broker_dir = data_dir / "broker"
        self.password_file = self.broker_dir / "passwd"
        self.acl_file = self.broker_dir / "acl"
        self.cloud_password_file = self.broker_dir / "cloud-password"
        self.dashboard_token_file = data_dir / "dashboard-token"

    def _secret(self, path: Path, what: str) -> str:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if path.exists():
            text = path.read_text(encoding="utf-8").strip()
            if path.stat().st_mode & 0o077:
                path.chmod(0o600)
                log.warning("%s %s was readable by others; it is now 0600", what, path)
            if text:
                return text
        text = secrets.token_urlsafe(32)
        _write_private(path, text + "\n", 0o600)
        log.info("made a new %s in %s", what, path)
        return text

    def token(self) -> str:
        """The join token, made (0600) if there is none yet."""
        return self._secret(self.token_file, "join token")

    def rotate_token(self) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        token = secrets.token_urlsafe(32)
        _write_private(self.token_file, token + "\n", 0o600)
        return token

    def cloud_password(self) -> str:
        return self._secret(self.cloud_password_file, "cloud-sync broker password")

    def dashboard_token(self) -> str:
        """The dashboard's token, made (0600) if there is none yet; kept, so open pages outlive restarts."""
        return self._secret(self.dashboard_token_file, "dashboard token")

    def admitted(self) -> set[str]:
        """The nodes the ACL file admits now (none if there is no file)."""
        try:
            lines = self.acl_file.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return set()
        return {
            line.split(None, 1)[1].strip()
            for line in lines
            if line.startswith("user ") and line.split(None, 1)[1].strip() != CLOUD_USER
        }

    def write(self, nodes: Iterable[str]) -> list[str]:
        """Write the password file and ACL for ``nodes`` (invalid names are left out); the nodes written."""
        token, cloud = self.token(), self.cloud_password()
        admitted = sorted({n for n in nodes if valid_node_name(n)})
        passwords = [password_entry(CLOUD_USER, cloud)]
        passwords += [password_entry(node, node_password(token, node)) for node in admitted]
        acl = [
            "# Written by edgetwin cloud-sync whenever the admitted nodes change: do not edit.",
            f"user {CLOUD_USER}",
            "topic readwrite edgetwin/v1/#",
        ]
        for node in admitted:
            acl += [f"user {node}", f"topic readwrite {LINK_PREFIX}{node}/#"]
        self.broker_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        _write_private(self.password_file, "\n".join(passwords) + "\n", 0o600)
        _write_private(self.acl_file, "\n".join(acl) + "\n", 0o644)
        return admitted


def reload_command(command: str, *, timeout: float = 30.0) -> BrokerReload:
    """A reload that runs ``command`` in a shell (``pkill -HUP -x mosquitto``)."""

    async def reload() -> None:
        process = await asyncio.create_subprocess_shell(
            command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        try:
            async with asyncio.timeout(timeout):
                _, err = await process.communicate()
        except TimeoutError:
            process.kill()
            await process.wait()
            raise BrokerReloadFailed(
                f"broker reload command {command!r} took longer than {timeout:g} s"
            ) from None
        if process.returncode != 0:
            raise BrokerReloadFailed(
                f"broker reload command {command!r} exited with {process.returncode}: "
                f"{err.decode(errors='replace').strip()[-300:]}"
            )

    return reload


class Admission:
    """Keeps the broker's files equal to the admitted nodes; ``changed()`` when they may differ."""

    def __init__(
        self,
        files: AccessFiles,
        nodes: Callable[[], set[str]],
        reload: BrokerReload | None,
        *,
        delays: tuple[float, ...] = DELAYS,
    ) -> None:
        self.files = files
        self.nodes = nodes
        self.reload = reload
        self.delays = delays
        self._written: tuple[str, tuple[str, ...]] | None = None
        self._changed = asyncio.Event()
        self._force = False
        self.applied = asyncio.Event()  # set after each successful write and reload (tests wait on it)

    def changed(self, *_: object) -> None:
        self._changed.set()

    def rewrite(self) -> None:
        """Write and reload even if nothing seems changed (the token was rotated: SIGHUP)."""
        self._force = True
        self._changed.set()

    async def apply(self, *, force: bool = False) -> None:
        """Write and reload if the admitted nodes or the token changed (or ``force``), until it works."""
        backoff = Backoff(self.delays)
        while True:
            token = self.files.token()
            wanted = tuple(sorted(n for n in self.nodes() if valid_node_name(n)))
            if not force and self._written == (token, wanted):
                return
            admitted = self.files.write(wanted)
            try:
                if self.reload is not None:
                    await self.reload()
            except TemporaryError as exc:
                delay = backoff.next()
                log.error("broker not reloaded: %s; trying again in %.1fs", exc, delay)  # noqa: TRY400
                await asyncio.sleep(delay)
                continue
            self._written = (token, wanted)
            force = False
            log.info("broker access written: nodes=%d admitted=%s", len(admitted), ",".join(admitted) or "-")
            self.applied.set()
            return

    async def run(self) -> None:
        while True:
            await self._changed.wait()
            self._changed.clear()
            force, self._force = self._force, False
            await self.apply(force=force)
