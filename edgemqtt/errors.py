"""Errors of the MQTT transport; it imports nothing of edgetwin, so it has its own tree::

    MqttError
    ├── BrokerUnavailable           temporary: the broker cannot be reached, or the connection was lost
    ├── ProtocolViolation           a peer broke MQTT 3.1.1; its connection is closed
    ├── ConnectionRefused           permanent: the broker answered CONNECT with a refusal
    │   ├── BadUsernameOrPassword   CONNACK 4
    │   ├── NotAuthorised           CONNACK 5
    │   └── TlsRefused              the TLS handshake failed: the broker's certificate is not trusted
    │                               (another CA, another host name) or the broker refused ours
    ├── SubscriptionRefused         permanent: SUBACK 0x80 for a topic filter (an ACL said no)
    └── InvalidBrokerAddress        permanent: the address cannot be used as given
        ├── InvalidBrokerUrl        an unsupported scheme, a bad port, a malformed URL
        └── InvalidTlsFiles         a CA, certificate or key file that cannot be read

Temporary errors are worth retrying after a short delay; permanent ones fail the same way until a
person changes a password, an ACL or a file, so a long-lived client retries them only slowly and a
one-shot command gives up at once. Messages never contain a password. Callers above the transport
translate these at their boundary.
"""

from __future__ import annotations

__all__ = [
    "BadUsernameOrPassword",
    "BrokerUnavailable",
    "ConnectionRefused",
    "InvalidBrokerAddress",
    "InvalidBrokerUrl",
    "InvalidTlsFiles",
    "MqttError",
    "NotAuthorised",
    "ProtocolViolation",
    "SubscriptionRefused",
    "TlsRefused",
]


class MqttError(Exception):
    """Base of every error the MQTT transport raises."""


class BrokerUnavailable(MqttError):
    """The MQTT broker cannot be reached or dropped the connection: retry later."""


class ProtocolViolation(MqttError):
    """The peer broke MQTT 3.1.1; the connection is closed."""


class ConnectionRefused(MqttError):
    """The broker refused the connection (CONNACK 1, 2, 4 or 5): retrying the same login fails too.

    ``code`` is the CONNACK return code (``None`` for a TLS refusal) and ``reason`` its meaning.
    """

    def __init__(self, message: str, code: int | None, reason: str) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


class BadUsernameOrPassword(ConnectionRefused):
    """CONNACK 4: the broker does not accept this user name and password."""


class NotAuthorised(ConnectionRefused):
    """CONNACK 5: the broker does not let this client connect (no or unknown credentials, ACL)."""


class TlsRefused(ConnectionRefused):
    """The TLS handshake failed for a reason that a retry does not change (certificate, CA, host name)."""


class SubscriptionRefused(MqttError):
    """The broker answered a SUBSCRIBE with 0x80 for the filters in ``filters``."""

    def __init__(self, message: str, filters: tuple[str, ...]) -> None:
        super().__init__(message)
        self.filters = filters


class InvalidBrokerAddress(MqttError):
    """The broker address cannot be used as given."""


class InvalidBrokerUrl(InvalidBrokerAddress):
    """A broker URL with an unsupported scheme, a bad port or another malformation."""


class InvalidTlsFiles(InvalidBrokerAddress):
    """A TLS CA file, certificate or key that cannot be read or does not fit together."""
