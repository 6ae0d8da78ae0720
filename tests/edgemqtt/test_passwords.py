"""mosquitto's password file format both ways: mosquitto_passwd's entries here, ours in mosquitto."""

from __future__ import annotations

import base64
import hashlib
import subprocess
from pathlib import Path

import pytest

from edgemqtt.broker import PasswordFile, hash_password, password_entry
from edgemqtt.client import MqttClient
from edgemqtt.errors import NotAuthorised
from tests.fixtures.brokers import Mosquitto, mosquitto_binary, mosquitto_passwd_binary

PASSWORDS = {"node-a": "p@ss:w/rd%", "node-b": "ünïcode ✓", "node-c": "x"}


def test_entries_written_by_mosquitto_passwd_are_verified(tmp_path: Path) -> None:
    path = tmp_path / "passwords"
    tool = mosquitto_passwd_binary()
    for index, (user, password) in enumerate(PASSWORDS.items()):
        subprocess.run(
            [str(tool), *(["-c"] if index == 0 else []), "-b", str(path), user, password], check=True
        )
    assert all(line.split(":", 1)[1].startswith("$7$") for line in path.read_text().splitlines())
    users = PasswordFile(path)
    for user, password in PASSWORDS.items():
        assert users.check(user, password.encode())
        assert not users.check(user, (password + "!").encode())
        assert not users.check(user, None)
    assert not users.check("node-z", b"x")
    assert not users.check(None, b"x")


def test_old_sha512_entries_are_verified_too(tmp_path: Path) -> None:
    salt = b"0123456789ab"
    digest = hashlib.sha512(b"old-secret" + salt).digest()
    path = tmp_path / "passwords"
    path.write_text(f"legacy:$6${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}\n")
    users = PasswordFile(path)
    assert users.check("legacy", b"old-secret")
    assert not users.check("legacy", b"old-secret2")


def test_malformed_lines_are_skipped_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "passwords"
    path.write_text(f"# a comment\nbroken line\nplain:secret\n{password_entry('ok', 'pw')}\n")
    users = PasswordFile(path)
    assert len(users) == 1 and "ok" in users
    assert sum("is not 'user:$7$" in r.getMessage() for r in caplog.records) == 2


def test_our_hash_is_mosquitto_passwd_s_format() -> None:
    _, kind, iterations, salt, digest = hash_password("pw", salt=b"s" * 12).split("$")
    assert (kind, iterations) == ("7", "101")
    assert len(base64.b64decode(salt)) == 12 and len(base64.b64decode(digest)) == 64


async def test_real_mosquitto_accepts_entries_we_write(tmp_path: Path) -> None:
    path = tmp_path / "passwords"
    path.write_text("".join(password_entry(user, password) + "\n" for user, password in PASSWORDS.items()))
    server = Mosquitto(
        mosquitto_binary(), tmp_path, settings=f"allow_anonymous false\npassword_file {path}\n"
    )
    server.start()
    try:
        for user, password in PASSWORDS.items():
            async with MqttClient(server.address.with_credentials(user, password)) as client:
                await client.publish_confirmed("check", b"in")
        with pytest.raises(NotAuthorised):
            await MqttClient(server.address.with_credentials("node-a", "wrong")).connect(timeout=10)
    finally:
        server.stop()
