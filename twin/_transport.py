"""The twin's boundary with the MQTT transport: its errors become edgetwin's."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from edgemqtt.errors import MqttError
from twin.errors import BrokerUnavailable

__all__ = ["translate_mqtt_errors"]


@contextlib.contextmanager
def translate_mqtt_errors() -> Iterator[None]:
    """Raise the transport's ``MqttError`` as the twin's ``BrokerUnavailable``."""
    try:
        yield
    except MqttError as exc:
        raise BrokerUnavailable(str(exc)) from exc
