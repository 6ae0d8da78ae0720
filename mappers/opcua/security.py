"""The secrets of a secured OPC UA session, read from the files ``configData`` names.

Certificates, private keys and passwords never sit in a manifest: ``configData`` names files
(mounted secrets on a gateway), read here each time the device connects, so a renewed certificate
is picked up at the next reconnect. Everything that can be checked before talking to the server is
checked here, so that the error names the file rather than a handshake that timed out: the file
is missing or unreadable, it is not a certificate or key (PEM or DER), the key is not the
certificate's (the server would drop our signed messages without a word), the certificate has
expired. Each of these is ``CredentialsUnreadable``; the device goes ``unhealthy`` with that reason.
"""

from __future__ import annotations

import asyncio
import datetime
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from mappers.opcua.config import OpcuaConfig
from twin.errors import PermanentError

__all__ = ["Credentials", "CredentialsUnreadable", "load_credentials"]


class CredentialsUnreadable(PermanentError):
    """A certificate, private key or password file named in configData cannot be used."""


@dataclass(frozen=True)
class Credentials:
    """What a session needs; DER bytes so that asyncua never guesses a format from a file name."""

    certificate: bytes | None = None  # DER
    private_key: bytes | None = None  # DER, PKCS#8, unencrypted (in memory only)
    server_certificate: bytes | None = None  # DER
    application_uri: str | None = None
    user_name: str | None = None
    password: str | None = None


def _read(key: str, path: str) -> bytes:
    try:
        return Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise CredentialsUnreadable(f"{key} {path}: cannot read it: {exc.strerror or exc}") from exc


def _certificate(key: str, path: str) -> x509.Certificate:
    data = _read(key, path)
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise CredentialsUnreadable(f"{key} {path}: not a PEM or DER certificate ({exc})") from exc


def _private_key(key: str, path: str, password: bytes | None) -> PrivateKeyTypes:
    data = _read(key, path)
    try:
        if b"-----BEGIN" in data:
            return serialization.load_pem_private_key(data, password=password)
        return serialization.load_der_private_key(data, password=password)
    except (ValueError, TypeError) as exc:
        # TypeError: an encrypted key without privateKeyPasswordFile, or a password for a plain one.
        raise CredentialsUnreadable(f"{key} {path}: not a usable PEM or DER private key ({exc})") from exc


def _secret(key: str, path: str) -> str:
    data = _read(key, path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CredentialsUnreadable(f"{key} {path}: not UTF-8 text") from exc
    # One trailing line break is the file's, not the password's (echo secret > file).
    return text.removesuffix("\n").removesuffix("\r")


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _application_uri(cert: x509.Certificate) -> str | None:
    """The certificate's URI; servers check that the session's ApplicationUri is the same."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return None
    uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None


def _load(config: OpcuaConfig) -> Credentials:
    certificate = private_key = server_certificate = None
    application_uri = config.applicationUri
    if config.securityPolicy != "None":
        assert config.certificateFile and config.privateKeyFile  # the config model insists
        cert = _certificate("certificateFile", config.certificateFile)
        now = datetime.datetime.now(datetime.UTC)
        if cert.not_valid_after_utc < now:
            raise CredentialsUnreadable(
                f"certificateFile {config.certificateFile}: expired on {cert.not_valid_after_utc:%Y-%m-%d}"
            )
        key_password = (
            _secret("privateKeyPasswordFile", config.privateKeyPasswordFile).encode()
            if config.privateKeyPasswordFile
            else None
        )
        key = _private_key("privateKeyFile", config.privateKeyFile, key_password)
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        if key.public_key().public_bytes(serialization.Encoding.DER, spki) != cert.public_key().public_bytes(
            serialization.Encoding.DER, spki
        ):
            raise CredentialsUnreadable(
                f"privateKeyFile {config.privateKeyFile} is not the key of "
                f"certificateFile {config.certificateFile}"
            )
        certificate = _der(cert)
        private_key = key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        if config.serverCertificateFile:
            server_certificate = _der(_certificate("serverCertificateFile", config.serverCertificateFile))
        application_uri = application_uri or _application_uri(cert)
    password = _secret("passwordFile", config.passwordFile) if config.passwordFile else None
    return Credentials(
        certificate, private_key, server_certificate, application_uri, config.userName, password
    )


async def load_credentials(config: OpcuaConfig) -> Credentials:
    """Read the files of ``config`` (in a thread: a mounted secret may sit on a slow disk)."""
    return await asyncio.to_thread(_load, config)
