"""Broker options on the command line: URLs, credentials, TLS files, refusals; one line each, no password."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from urllib.parse import quote

import pytest

from edgemqtt import BrokerAddress, MqttClient, NotAuthorised, password_entry
from tests.fixtures.brokers import APP_PASSWORD, APP_USER, SecureBroker
from tests.fixtures.processes import run_cli, service
from tests.fixtures.tools import free_port

WRONG = "Wr0ng-Passw0rd"


def assert_one_clear_line(stderr: str, *expected: str) -> None:
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.startswith("edgetwin ")]
    assert len(lines) == 1, stderr
    for text in expected:
        assert text in lines[0], stderr


def test_a_refused_login_exits_at_once_naming_the_reason(secure_mosquitto: SecureBroker) -> None:
    tls = secure_mosquitto.tls
    assert tls.ca_file is not None
    url = f"mqtts://{APP_USER}:{WRONG}@127.0.0.1:{tls.port}"
    result = run_cli(
        "twin", "get", "thermostat", "--broker", url, "--tls-ca", str(tls.ca_file), "--timeout", "30"
    )
    assert result.returncode != 0
    assert_one_clear_line(result.stderr, "refused the connection of user 'app': not authorised")
    assert WRONG not in result.stderr + result.stdout


def test_right_credentials_reach_the_broker_over_tls(secure_mosquitto: SecureBroker) -> None:
    tls = secure_mosquitto.tls
    assert tls.ca_file is not None
    url = f"mqtts://{APP_USER}:{quote(APP_PASSWORD, safe='')}@localhost:{tls.port}"
    result = run_cli(
        "twin", "get", "thermostat", "--broker", url, "--tls-ca", str(tls.ca_file), "--timeout", "0.5",
        "--wait", "0",
    )  # fmt: skip
    # Connected and subscribed: what is missing is a twin service, not the broker.
    assert result.returncode != 0
    assert "is the twin service running" in result.stderr


def test_a_certificate_for_another_host_is_refused(secure_mosquitto: SecureBroker) -> None:
    wrong = secure_mosquitto.wrong_name
    assert wrong.ca_file is not None
    url = f"mqtts://{APP_USER}:{APP_PASSWORD}@127.0.0.1:{wrong.port}"
    result = run_cli("twin", "get", "thermostat", "--broker", url, "--tls-ca", str(wrong.ca_file))
    assert result.returncode != 0
    assert_one_clear_line(result.stderr, "is not trusted")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://u:s3cret@127.0.0.1:1883", "unsupported broker URL scheme 'http'"),
        ("mqtt://u:s3cret@127.0.0.1:port", "the port is not a number"),
        ("mqtt://u:s3cret@127.0.0.1:70000", "the port is out of range"),
    ],
)
@pytest.mark.parametrize(
    "command", [["twin", "get", "thermostat"], ["mapper", "run", "virtual"], ["node", "n1"]]
)
def test_a_bad_broker_url_is_one_line_without_the_password(
    command: list[str], url: str, message: str, tmp_path: Path
) -> None:
    extra = ["--data-dir", str(tmp_path)] if command[0] == "node" else []
    result = run_cli(*command, "--broker", url, *extra)
    assert result.returncode != 0
    assert_one_clear_line(result.stderr, message)
    assert "s3cret" not in result.stderr + result.stdout


def test_a_missing_tls_file_is_one_clear_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    result = run_cli("twin", "get", "thermostat", "--broker", "mqtts://127.0.0.1:1", "--tls-ca", str(missing))
    assert result.returncode != 0
    assert_one_clear_line(result.stderr, f"TLS CA file {missing} does not exist")


def test_tls_files_with_a_plain_url_say_to_use_mqtts(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    result = run_cli("twin", "get", "thermostat", "--broker", "mqtt://127.0.0.1:1", "--tls-ca", str(ca))
    assert result.returncode != 0
    assert_one_clear_line(result.stderr, "use mqtts://127.0.0.1:1")


def test_the_embedded_broker_refuses_a_public_address_without_a_password_file() -> None:
    result = run_cli("broker", "--host", "0.0.0.0", "--port", "0")
    assert result.returncode != 0
    assert_one_clear_line(result.stderr, "refusing to listen on 0.0.0.0 without a password file")


def test_every_broker_command_has_the_tls_options() -> None:
    for command in (["node"], ["twin", "get"], ["twin", "set"], ["twin", "watch"], ["mapper", "run"], ["up"]):
        result = run_cli(*command, "--help")
        assert result.returncode == 0
        for option in ("--broker", "--tls-ca", "--tls-cert", "--tls-key"):
            assert option in result.stdout, (command, option)


def test_a_node_with_a_refused_login_exits_at_once_with_the_reason(
    secure_mosquitto: SecureBroker, tmp_path: Path
) -> None:
    url = f"mqtt://{APP_USER}:{WRONG}@127.0.0.1:{secure_mosquitto.plain.port}"
    result = run_cli("node", "n1", "--broker", url, "--data-dir", str(tmp_path))
    assert result.returncode != 0
    assert_one_clear_line(result.stderr, "not authorised")
    assert WRONG not in result.stderr + result.stdout


def test_a_mapper_runner_with_a_refused_login_says_so_once_and_keeps_waiting(
    secure_mosquitto: SecureBroker,
) -> None:
    url = f"mqtt://{APP_USER}:{WRONG}@127.0.0.1:{secure_mosquitto.plain.port}"
    with service("mapper", "run", "virtual", "--broker", url) as runner:
        line = runner.wait_for("refused the connection")
        assert "ERROR" in line and "not authorised; trying again every 60 s" in line
        assert runner.proc.poll() is None  # a long-lived process: it waits for the fix, slowly
    assert sum("refused the connection" in line for line in runner.lines) == 1
    assert all(WRONG not in line for line in runner.lines)


async def test_the_embedded_broker_reloads_its_password_file_and_acl_on_sighup(tmp_path: Path) -> None:
    passwords, acl = tmp_path / "passwd", tmp_path / "acl"
    passwords.write_text(password_entry("alice", "a") + "\n")
    acl.write_text("user alice\ntopic a/#\n")
    port = free_port()
    carol = BrokerAddress("127.0.0.1", port, username="carol", password="c")
    with service(
        "broker", "--port", str(port), "--password-file", str(passwords), "--acl-file", str(acl)
    ) as broker:
        broker.wait_for("embedded MQTT broker on")
        with pytest.raises(NotAuthorised):
            await MqttClient(carol).connect()
        acl.write_text("user alice\ntopic a/#\nuser carol\ntopic c/#\n")
        passwords.write_text(password_entry("alice", "a") + "\n" + password_entry("carol", "c") + "\n")
        broker.proc.send_signal(signal.SIGHUP)
        await asyncio.to_thread(broker.wait_for, "embedded MQTT broker reloaded")
        async with MqttClient(carol) as client:
            await client.publish_confirmed("c/x", b"1")
        acl.write_text("this is not an ACL\n")
        broker.proc.send_signal(signal.SIGHUP)
        line = await asyncio.to_thread(broker.wait_for, "reload refused")
        assert "keeps its previous passwords and ACL" in line
        async with MqttClient(carol) as client:  # still served, with the rules it had
            await client.publish_confirmed("c/x", b"2")
