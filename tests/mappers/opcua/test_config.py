"""OPC UA configData as KubeEdge manifests write it, and the mistakes that must be caught."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from mappers.opcua.config import OpcuaConfig, OpcuaVisitor


def test_kubeedge_mapper_keys_name_the_secret_files() -> None:
    config = OpcuaConfig.model_validate(
        {
            "url": "opc.tcp://10.0.0.7:4840/plc",
            "securityPolicy": "Basic256Sha256",
            "securityMode": "Sign",
            "certificate": "/etc/edgetwin/mapper.pem",
            "privateKey": "/etc/edgetwin/mapper-key.pem",
            "remoteCertificate": "/etc/edgetwin/plc.der",
            "userName": "operator",
            "password": "/etc/edgetwin/password",
            "timeout": 3000,
        }
    )
    assert config.certificateFile == "/etc/edgetwin/mapper.pem"
    assert config.privateKeyFile == "/etc/edgetwin/mapper-key.pem"
    assert config.serverCertificateFile == "/etc/edgetwin/plc.der"
    assert config.passwordFile == "/etc/edgetwin/password"
    assert (config.message_security, config.mode, config.timeout) == ("Sign", "poll", 3000)


def test_the_sample_keys_and_defaults() -> None:
    config = OpcuaConfig.model_validate(
        {"url": "opc.tcp://127.0.0.1:4840/edgetwin/boiler/", "securityPolicy": "None", "securityMode": "None"}
    )
    assert (config.securityPolicy, config.message_security, config.mode) == ("None", "None", "poll")
    assert config.watchdogInterval == 1000


def test_a_policy_without_a_mode_means_sign_and_encrypt_and_names_are_not_case_sensitive() -> None:
    config = OpcuaConfig.model_validate(
        {
            "url": "opc.tcp://plc:4840",
            "securityPolicy": "basic256sha256",
            "certificateFile": "c.pem",
            "privateKeyFile": "k.pem",
            "mode": "Subscription",
        }
    )
    assert (config.securityPolicy, config.message_security, config.mode) == (
        "Basic256Sha256",
        "SignAndEncrypt",
        "subscribe",
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "url"),
        ({"url": "http://plc:4840"}, "opc.tcp://"),
        ({"url": "opc.tcp://plc", "mode": "push"}, "poll or subscribe"),
        ({"url": "opc.tcp://plc", "securityPolicy": "Rot13"}, "securityPolicy must be one of"),
        ({"url": "opc.tcp://plc", "securityMode": "Sign"}, "needs a securityPolicy"),
        ({"url": "opc.tcp://plc", "securityPolicy": "Basic256Sha256"}, "needs certificateFile"),
        (
            {
                "url": "opc.tcp://plc",
                "securityPolicy": "Basic256Sha256",
                "securityMode": "None",
                "certificateFile": "c",
                "privateKeyFile": "k",
            },
            "needs securityMode Sign or SignAndEncrypt",
        ),
        ({"url": "opc.tcp://plc", "passwordFile": "/p"}, "passwordFile needs userName"),
        ({"url": "opc.tcp://plc", "timeout": 0}, "greater than 0"),
    ],
)
def test_config_mistakes_are_named(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        OpcuaConfig.model_validate(data)


def test_visitor_by_node_id_or_browse_path() -> None:
    by_id = OpcuaVisitor.model_validate({"nodeID": "ns=2;i=7", "dataType": "double"})
    assert (by_id.address, by_id.browsePath, by_id.mode) == ("ns=2;i=7", None, None)
    by_path = OpcuaVisitor.model_validate(
        {"browsePath": "/0:Objects/2:Boiler/2:Temperature", "mode": "subscribe", "samplingInterval": 100}
    )
    assert (by_path.address, by_path.mode, by_path.samplingInterval) == (
        "/0:Objects/2:Boiler/2:Temperature",
        "subscribe",
        100,
    )
    assert OpcuaVisitor.model_validate({"nodeId": "ns=2;s=T"}).nodeID == "ns=2;s=T"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "needs nodeID"),
        ({"nodeID": "  "}, "needs nodeID"),
        ({"nodeID": "ns=2;i=7", "browsePath": "/0:Objects/2:T"}, "not both"),
        ({"nodeID": "ns=2;i=7", "samplingInterval": -1}, "greater than or equal to 0"),
    ],
)
def test_visitor_mistakes_are_named(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        OpcuaVisitor.model_validate(data)
