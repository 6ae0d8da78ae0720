"""The OPC UA ``configData`` models: KubeEdge's keys, plus a few documented extras.

Device (``spec.protocol.configData``): ``url``, ``securityPolicy``, ``securityMode``,
``userName`` and the files of the secrets: ``certificateFile``, ``privateKeyFile``,
``passwordFile``, ``serverCertificateFile``. KubeEdge's mapper names the same files
``certificate``, ``privateKey``, ``password`` (a file there too) and ``remoteCertificate``; both
spellings are accepted. A secret is never written inline: every secret key names a file.
Extras: ``mode`` (``poll`` | ``subscribe``), ``timeout``, ``watchdogInterval``,
``publishingInterval``, ``sessionTimeout`` (all ms), ``applicationUri``.

Property (``visitors.configData``): ``nodeID`` (KubeEdge's key: ``ns=2;i=7``, ``ns=2;s=Temperature``)
or ``browsePath`` (OPC UA's relative path text, from the Root folder:
``/0:Objects/2:Boiler/2:Temperature``); extras ``mode`` (overrides the device's) and
``samplingInterval`` (ms, subscriptions).
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, field_validator, model_validator

from mappers.plugin import PluginConfig

__all__ = ["SECURITY_POLICIES", "Mode", "OpcuaConfig", "OpcuaVisitor", "SecurityMode"]

Mode = Literal["poll", "subscribe"]
SecurityMode = Literal["None", "Sign", "SignAndEncrypt"]

#: The security policies asyncua implements, by the name OPC UA (and KubeEdge's samples) use.
SECURITY_POLICIES = (
    "None",
    "Basic256Sha256",
    "Aes128Sha256RsaOaep",
    "Aes256Sha256RsaPss",
    "Basic256",
    "Basic128Rsa15",
)

_MODES = {"poll": "poll", "polling": "poll", "subscribe": "subscribe", "subscription": "subscribe"}


def _parse_mode(value: object) -> object:
    if isinstance(value, str):
        mode = _MODES.get(value.strip().lower())
        if mode is None:
            raise ValueError(f"mode must be poll or subscribe, not {value!r}")
        return mode
    return value


def _by_name(value: object, names: tuple[str, ...], what: str) -> object:
    """``basic256sha256`` → ``Basic256Sha256``: manifests are not always careful with case."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text == "" or text.lower() == "none":
        return "None"
    for name in names:
        if name.lower() == text.lower():
            return name
    raise ValueError(f"{what} must be one of {', '.join(names)}, not {value!r}")


class OpcuaConfig(PluginConfig):
    url: str = Field(description="opc.tcp://HOST:PORT/PATH")
    mode: Mode = "poll"
    securityPolicy: str = "None"
    securityMode: SecurityMode | None = None
    certificateFile: str | None = Field(
        default=None, validation_alias=AliasChoices("certificateFile", "certificate")
    )
    privateKeyFile: str | None = Field(
        default=None, validation_alias=AliasChoices("privateKeyFile", "privateKey")
    )
    privateKeyPasswordFile: str | None = None
    serverCertificateFile: str | None = Field(
        default=None, validation_alias=AliasChoices("serverCertificateFile", "remoteCertificate")
    )
    userName: str | None = Field(default=None, validation_alias=AliasChoices("userName", "username", "user"))
    passwordFile: str | None = Field(default=None, validation_alias=AliasChoices("passwordFile", "password"))
    applicationUri: str | None = None
    timeout: float = Field(default=5000.0, gt=0, description="ms per request")
    watchdogInterval: float = Field(default=1000.0, gt=0, description="ms between liveness probes")
    publishingInterval: float | None = Field(default=None, gt=0, description="ms; subscriptions")
    sessionTimeout: float = Field(default=60000.0, ge=1000, description="ms the server keeps our session")

    @field_validator("mode", mode="before")
    @classmethod
    def _mode(cls, value: object) -> object:
        return _parse_mode(value)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.lower().startswith("opc.tcp://") or len(value) <= len("opc.tcp://"):
            raise ValueError(f"url must be opc.tcp://HOST:PORT/PATH, not {value!r}")
        return value

    @field_validator("securityPolicy", mode="before")
    @classmethod
    def _policy(cls, value: object) -> object:
        return _by_name(value, SECURITY_POLICIES, "securityPolicy")

    @field_validator("securityMode", mode="before")
    @classmethod
    def _security_mode(cls, value: object) -> object:
        if value is None:
            return None
        return _by_name(value, ("None", "Sign", "SignAndEncrypt"), "securityMode")

    @model_validator(mode="after")
    def _consistent(self) -> OpcuaConfig:
        if self.securityPolicy == "None":
            if self.securityMode not in (None, "None"):
                raise ValueError(
                    f"securityMode {self.securityMode} needs a securityPolicy such as Basic256Sha256"
                )
        else:
            if self.securityMode == "None":
                raise ValueError(
                    f"securityPolicy {self.securityPolicy} needs securityMode Sign or SignAndEncrypt"
                )
            if not self.certificateFile or not self.privateKeyFile:
                raise ValueError(
                    f"securityPolicy {self.securityPolicy} needs certificateFile and privateKeyFile "
                    "(files holding the client certificate and its private key)"
                )
        if self.passwordFile and not self.userName:
            raise ValueError("passwordFile needs userName")
        return self

    @property
    def message_security(self) -> SecurityMode:
        """The securityMode in force: SignAndEncrypt unless said otherwise when a policy is set."""
        if self.securityPolicy == "None":
            return "None"
        return self.securityMode or "SignAndEncrypt"


class OpcuaVisitor(PluginConfig):
    nodeID: str | None = Field(
        default=None, validation_alias=AliasChoices("nodeID", "nodeId", "nodeid", "node_id")
    )
    browsePath: str | None = None
    mode: Mode | None = None
    samplingInterval: float | None = Field(default=None, ge=0, description="ms; subscriptions")

    @field_validator("mode", mode="before")
    @classmethod
    def _mode(cls, value: object) -> object:
        return None if value is None else _parse_mode(value)

    @model_validator(mode="after")
    def _one_address(self) -> OpcuaVisitor:
        node = (self.nodeID or "").strip()
        path = (self.browsePath or "").strip()
        if not node and not path:
            raise ValueError(
                "needs nodeID (like ns=2;s=Temperature) or browsePath (like /0:Objects/2:Boiler/2:T)"
            )
        if node and path:
            raise ValueError("give nodeID or browsePath, not both")
        return self

    @property
    def address(self) -> str:
        """The node id or the browse path, as written: what log lines and errors name."""
        return (self.nodeID or self.browsePath or "").strip()
