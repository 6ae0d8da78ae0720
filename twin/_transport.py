"""The twin's boundary with the MQTT transport: its errors become edgetwin's."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from edgemqtt.errors import ConnectionRefused, InvalidBrokerAddress, MqttError, SubscriptionRefused
from twin.errors import BrokerRefused, BrokerUnavailable

__all__ = ["translate_mqtt_errors"]


@contextlib.contextmanager
def translate_mqtt_errors() -> Iterator[None]:
    """Raise the transport's errors as the twin's.

    A refusal that a retry does not change (login, TLS certificate, SUBACK 0x80, an unusable
    address) becomes ``BrokerRefused`` (permanent); everything else ``BrokerUnavailable``.
    """
    try:
        yield
    except (ConnectionRefused, SubscriptionRefused, InvalidBrokerAddress) as exc:
        raise BrokerRefused(str(exc)) from exc
    except MqttError as exc:
        raise BrokerUnavailable(str(exc)) from exc
