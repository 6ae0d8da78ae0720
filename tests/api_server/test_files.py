"""The data directory holds Secrets and the token: only its owner may read it, old ones included."""

from __future__ import annotations

import logging
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fixtures.apiserver import ApiServerThread, Http

PRIVATE = ("state.db", "state.db-wal", "state.db-shm", "token", "ca.key", "server.key", "kubeconfig")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def store_a_secret(server: ApiServerThread) -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"k": "v"}}
    status, _, _ = Http.to(server).request("POST", "/api/v1/namespaces/default/secrets", secret)
    assert status in (201, 409)


def test_the_data_directory_and_its_private_files_are_the_owners_alone(
    apiserver_factory: Callable[..., ApiServerThread],
) -> None:
    server = apiserver_factory()
    store_a_secret(server)
    assert mode(server.data_dir) == 0o700
    for name in PRIVATE:
        assert mode(server.data_dir / name) == 0o600, name


def test_files_left_open_by_an_older_version_are_tightened_at_start(
    apiserver_factory: Callable[..., ApiServerThread], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="api_server.files")
    server = apiserver_factory()
    store_a_secret(server)
    server.stop()
    # what an older version left: everything readable by all
    server.data_dir.chmod(0o755)
    for path in server.data_dir.iterdir():
        path.chmod(0o644)
    (server.data_dir / "state.db-wal").touch(0o644)
    (server.data_dir / "state.db-shm").touch(0o644)

    server.start()
    store_a_secret(server)
    assert mode(server.data_dir) == 0o700
    for name in PRIVATE:
        assert mode(server.data_dir / name) == 0o600, name
    assert mode(server.data_dir / "ca.crt") == 0o644  # certificates are public
    tightened = [r.getMessage() for r in caplog.records if r.name == "api_server.files"]
    assert len(tightened) == len(PRIVATE) + 1  # the directory too, each named once
    assert any("/token was mode 644, now 600" in line for line in tightened)
