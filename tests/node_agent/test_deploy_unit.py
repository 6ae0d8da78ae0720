"""node-agent/deploy/: the systemd unit, its example settings and the local broker's configuration.

No systemd runs in containers or CI to start the unit under, so what systemd would do is checked
piece by piece: ``systemd-analyze verify`` reads the unit as systemd does, ``systemd-analyze
security --offline`` scores its hardening, and the command line its ``ExecStart=`` expands to
with ``node.env`` (``tests.fixtures.systemd``) is what ``edgetwin node`` accepts. That the same
command line joins a cloud, against mosquitto with ``mosquitto.conf``, is
``tests/cloud_sync/test_deploy_run.py``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edgetwin.cli import build_parser
from edgetwin.commands._broker import broker_address
from edgetwin.commands.node import cloud_settings
from tests.fixtures.certs import make_tls_files
from tests.fixtures.systemd import exec_start, read_environment_file, systemd_analyze, unit_settings

DEPLOY = Path(__file__).resolve().parents[2] / "node-agent" / "deploy"
UNIT = DEPLOY / "edgetwin-node.service"
EXAMPLE_ENV = DEPLOY / "node.env"
#: The exposure score (0 best, 10 worst) `systemd-analyze security` may give the unit, times ten.
EXPOSURE_THRESHOLD = 30


def unit_for_this_machine(tmp_path: Path) -> Path:
    """The unit with its program and settings file where this checkout has them (verify opens both)."""
    text = UNIT.read_text()
    text = text.replace("/opt/edgetwin/bin/edgetwin", str(Path(sys.executable).parent / "edgetwin"))
    text = text.replace("EnvironmentFile=/etc/edgetwin/node.env", f"EnvironmentFile={EXAMPLE_ENV}")
    path = tmp_path / UNIT.name
    path.write_text(text)
    return path


def test_systemd_reads_the_unit_without_a_complaint(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(systemd_analyze()), "verify", str(unit_for_this_machine(tmp_path))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "" and result.stdout.strip() == ""


def test_the_units_hardening_keeps_its_exposure_low(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            str(systemd_analyze()),
            "security",
            "--offline=true",
            f"--threshold={EXPOSURE_THRESHOLD}",
            str(unit_for_this_machine(tmp_path)),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    summary = result.stdout.strip().splitlines()[-1]
    assert result.returncode == 0, summary
    assert "Overall exposure level for edgetwin-node.service" in summary


def test_the_unit_keeps_what_hardware_access_needs_and_restarts_on_failure() -> None:
    settings = dict(unit_settings(UNIT.read_text(), "Service"))
    assert settings["Restart"] == "on-failure" and settings["User"] == "edgetwin"
    assert settings["StateDirectory"] == "edgetwin" and settings["NoNewPrivileges"] == "yes"
    assert settings["ProtectSystem"] == "strict"
    # each would shut out serial ports or GPIO device files (the unit's comments say why)
    for breaking in ("PrivateDevices", "ProtectClock", "DeviceAllow", "ProtectKernelTunables"):
        assert breaking not in settings, breaking


def test_the_example_settings_expand_to_a_command_line_edgetwin_node_accepts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    environment = read_environment_file(EXAMPLE_ENV.read_text())
    argv = exec_start(UNIT.read_text(), environment, {"S": "/var/lib"})
    assert argv[:3] == ["/opt/edgetwin/bin/edgetwin", "node", "gateway-1"]
    # the token and CA files are read when the settings are made: point at ones that exist here
    token, ca = tmp_path / "token", make_tls_files(tmp_path / "tls").ca
    token.write_text("the-join-token\n")
    here = {environment["EDGETWIN_TOKEN_FILE"]: str(token), "/etc/edgetwin/cloud-ca.pem": str(ca)}
    argv = [here.get(a, a) for a in argv]
    args = build_parser("node").parse_args(argv[1:])
    assert args.name == "gateway-1" and args.data_dir == Path("/var/lib/edgetwin")
    assert args.mappers == ["modbus", "opcua", "ble", "gpio"] and args.metrics_port == 9464
    cloud = cloud_settings(args)
    assert cloud is not None and cloud.token == "the-join-token"
    assert (cloud.broker.host, cloud.broker.port, cloud.broker.tls) == ("mqtt.example.com", 8883, True)
    assert cloud.broker.ca_file == ca
    # EDGETWIN_BROKER is not on the command line: edgetwin node reads it from its environment
    monkeypatch.setenv("EDGETWIN_BROKER", environment["EDGETWIN_BROKER"])
    local = broker_address(build_parser("node").parse_args(argv[1:]))
    assert (local.host, local.port, local.tls) == ("127.0.0.1", 1883, False)


def test_empty_mappers_mean_every_installed_one_and_no_options_add_nothing() -> None:
    environment = read_environment_file(EXAMPLE_ENV.read_text())
    environment.update(EDGETWIN_MAPPERS="", EDGETWIN_NODE_OPTIONS="")
    argv = exec_start(UNIT.read_text(), environment, {"S": "/var/lib"})
    assert argv[-1] == "--mappers"
    assert build_parser("node").parse_args(argv[1:]).mappers == []
