"""Secrets come from files: each way a file can be wrong is a named error before any handshake."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from mappers.opcua.config import OpcuaConfig
from mappers.opcua.security import CredentialsUnreadable, load_credentials
from tests.fixtures.opcua import CLIENT_URI, PASSWORD, OpcuaCerts


def secured(certs: OpcuaCerts, **extra: Any) -> OpcuaConfig:
    data: dict[str, Any] = {
        "url": "opc.tcp://plc:4840",
        "securityPolicy": "Basic256Sha256",
        "certificateFile": str(certs.trusted.certificate),
        "privateKeyFile": str(certs.trusted.private_key),
        **extra,
    }
    return OpcuaConfig.model_validate(data)


async def test_certificate_key_and_password_are_read_from_their_files(opcua_certs: OpcuaCerts) -> None:
    config = secured(
        opcua_certs,
        userName="operator",
        passwordFile=str(opcua_certs.password_file),
        serverCertificateFile=str(opcua_certs.server.certificate),
    )
    creds = await load_credentials(config)
    assert creds.password == PASSWORD  # the file's trailing line break is not part of it
    assert creds.user_name == "operator"
    assert creds.application_uri == CLIENT_URI  # from the certificate, as servers check it
    assert creds.certificate is not None and x509.load_der_x509_certificate(creds.certificate)
    assert creds.server_certificate is not None
    assert creds.private_key is not None


async def test_no_security_needs_no_files() -> None:
    creds = await load_credentials(OpcuaConfig.model_validate({"url": "opc.tcp://plc:4840"}))
    assert (creds.certificate, creds.password, creds.application_uri) == (None, None, None)


async def test_a_missing_certificate_file_is_named(opcua_certs: OpcuaCerts, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.pem"
    with pytest.raises(
        CredentialsUnreadable, match=f"certificateFile {missing}: cannot read it: No such file"
    ):
        await load_credentials(secured(opcua_certs, certificateFile=str(missing)))


async def test_an_unreadable_password_file_is_named(opcua_certs: OpcuaCerts, tmp_path: Path) -> None:
    folder = tmp_path / "secret"
    folder.mkdir()
    with pytest.raises(CredentialsUnreadable, match=r"passwordFile .*: cannot read it"):
        await load_credentials(secured(opcua_certs, userName="u", passwordFile=str(folder)))


async def test_a_file_that_is_not_a_certificate_is_named(opcua_certs: OpcuaCerts, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    with pytest.raises(CredentialsUnreadable, match="not a PEM or DER certificate"):
        await load_credentials(secured(opcua_certs, certificateFile=str(junk)))
    with pytest.raises(CredentialsUnreadable, match="not a usable PEM or DER private key"):
        await load_credentials(secured(opcua_certs, privateKeyFile=str(junk)))


async def test_a_key_that_is_not_the_certificates_is_named(opcua_certs: OpcuaCerts) -> None:
    with pytest.raises(CredentialsUnreadable, match="is not the key of certificateFile"):
        await load_credentials(secured(opcua_certs, privateKeyFile=str(opcua_certs.untrusted.private_key)))


async def test_an_expired_certificate_is_named(opcua_certs: OpcuaCerts, tmp_path: Path) -> None:
    key = serialization.load_pem_private_key(opcua_certs.trusted.private_key.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old")])
    past = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(past)
        .not_valid_after(past + datetime.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    old = tmp_path / "old.pem"
    old.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    config = secured(opcua_certs, certificateFile=str(old))
    with pytest.raises(CredentialsUnreadable, match="expired on"):
        await load_credentials(config)
