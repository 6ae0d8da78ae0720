"""Errors of the MQTT transport; it imports nothing of edgetwin, so it has its own tree::

    MqttError
    ├── BrokerUnavailable       the broker cannot be reached, or the connection was lost (retry)
    └── ProtocolViolation       a peer broke MQTT 3.1.1; its connection is closed

Callers above the transport translate these at their boundary.
"""

from __future__ import annotations

__all__ = ["BrokerUnavailable", "MqttError", "ProtocolViolation"]


class MqttError(Exception):
    """Base of every error the MQTT transport raises."""


class BrokerUnavailable(MqttError):
    """The MQTT broker cannot be reached or dropped the connection."""


class ProtocolViolation(MqttError):
    """The peer broke MQTT 3.1.1; the connection is closed."""
