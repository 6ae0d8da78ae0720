"""Secured endpoints: Basic256Sha256 with a client certificate and a password, all from files.

The simulator offers only Basic256Sha256 (Sign, SignAndEncrypt), trusts one client certificate
and one user. The right files connect; every wrong one is a named error in the log and an
``unhealthy`` device (the server is there and refuses us: a configuration to fix, not an outage),
and the mapper keeps serving the devices that are right.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mappers.opcua.simulator import OpcuaSimulator
from tests.fixtures.brokers import Mosquitto
from tests.fixtures.opcua import USER, CertPair, OpcuaCerts
from tests.mappers.builders import device, manifests, model
from tests.mappers.harness import mapper_stack, until
from tests.mappers.opcua.helpers import edgetwin, holds

pytestmark = pytest.mark.asyncio(loop_scope="module")

BOILER = model("secure-boiler-model", "opcua", {"temperature": "DOUBLE", "limit": "FLOAT"})
VISITORS = {
    "temperature": {"nodeID": "ns=2;s=Boiler.Temperature"},
    "limit": {"nodeID": "ns=2;s=Boiler.PressureLimit"},
}


def secured(name: str, sim: OpcuaSimulator, pair: CertPair, password_file: Path, **extra: Any) -> Any:
    config = {
        "url": sim.url,
        "securityPolicy": "Basic256Sha256",
        "securityMode": "SignAndEncrypt",
        "certificateFile": str(pair.certificate),
        "privateKeyFile": str(pair.private_key),
        "userName": USER,
        "passwordFile": str(password_file),
        **extra,
    }
    return device(name, "secure-boiler-model", "opcua", config, VISITORS, collect_ms=50)


async def test_right_files_connect_and_each_wrong_one_is_named(
    opcua_secure_sim: OpcuaSimulator,
    opcua_certs: OpcuaCerts,
    mosquitto: Mosquitto,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sim, certs = opcua_secure_sim, opcua_certs
    await sim.set("Temperature", 70.5)
    defs = manifests(
        BOILER,
        secured("encrypted", sim, certs.trusted, certs.password_file),
        secured("signed", sim, certs.trusted, certs.password_file, securityMode="Sign", mode="subscribe"),
        secured("stranger", sim, certs.untrusted, certs.password_file),
        secured("wrong-password", sim, certs.trusted, certs.wrong_password_file),
        device("plain", "secure-boiler-model", "opcua", {"url": sim.url}, VISITORS, collect_ms=50),
    )
    async with mapper_stack(mosquitto.address, defs, tmp_path) as stack:
        twins = stack.twin.twins
        await holds(stack, "default/encrypted", "temperature", "70.5")
        await holds(stack, "default/signed", "temperature", "70.5")
        await until(lambda: twins["default/stranger"].state == "unhealthy")
        await until(lambda: twins["default/wrong-password"].state == "unhealthy")
        await until(lambda: twins["default/plain"].state == "unhealthy")
        await sim.set("Temperature", 71.5)
        await holds(stack, "default/signed", "temperature", "71.5")  # pushed over a signed channel
        await holds(stack, "default/encrypted", "temperature", "71.5")

        await edgetwin("twin", "set", "encrypted", "limit", "3.5", "--broker", mosquitto.address.url)
        await holds(stack, "default/encrypted", "limit", "3.5")
        assert await sim.get("PressureLimit") == 3.5
    text = caplog.text
    assert "default/stranger: unhealthy: DeviceRefused: cannot connect to" in text
    assert "BadCertificateUntrusted" in text
    assert "default/wrong-password: unhealthy: DeviceRefused: cannot connect to" in text
    assert "BadUserAccessDenied" in text
    assert "default/plain: unhealthy: DeviceRefused: cannot connect to" in text
    assert "offers no endpoint for securityPolicy None, securityMode None" in text
