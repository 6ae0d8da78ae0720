"""The data directory is its owner's alone: it holds every Secret, the bearer token and TLS keys.

The directory is made (or tightened to) 0700 and each private file in it is created 0600, never
written first and restricted after. sqlite creates ``state.db-wal`` and ``state.db-shm`` with the
database file's mode, so ``state.db`` is created 0600 before sqlite opens it. Files an older
version left readable by others are tightened at start-up, each with a log line. Certificates
(``ca.crt``, ``server.crt``) are public and keep their mode.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

__all__ = ["PRIVATE_FILES", "prepare_data_dir", "write_private"]

log = logging.getLogger(__name__)

PRIVATE_FILES = (
    "state.db",
    "state.db-wal",
    "state.db-shm",
    "state.db-journal",
    "token",
    "ca.key",
    "server.key",
    "kubeconfig",
)


def _tighten(path: Path, wanted: int) -> None:
    current = stat.S_IMODE(path.stat().st_mode)
    if current != wanted:
        path.chmod(wanted)
        log.info("%s was mode %o, now %o: it holds what only its owner may read", path, current, wanted)


def prepare_data_dir(data_dir: Path) -> None:
    """Make ``data_dir`` private (0700, its private files 0600), creating it and ``state.db``."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    _tighten(data_dir, 0o700)
    for name in PRIVATE_FILES:
        path = data_dir / name
        if path.exists():
            _tighten(path, 0o600)
    database = data_dir / "state.db"
    if not database.exists():
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT, 0o600))  # an empty file is an empty database


def write_private(path: Path, data: bytes) -> None:
    """Write ``path`` readable by its owner only, from its first byte."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        os.fchmod(fd, 0o600)  # an existing file keeps its old mode through O_CREAT
        file.write(data)
