"""The embedded MQTT broker, for running edgetwin with nothing installed but Python.

It is amqtt, bound to 127.0.0.1 unless told otherwise (amqtt's own default is 0.0.0.0:1883, which
would expose the twin to the whole network). For more than a few thousand messages a second, or
for several gateways, use mosquitto: the twin service speaks to both the same way.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from twin.errors import BrokerUnavailable
from twin.mqtt import BrokerAddress

__all__ = ["embedded_broker"]

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def embedded_broker(host: str = "127.0.0.1", port: int = 1883) -> AsyncIterator[BrokerAddress]:
    """Run an anonymous MQTT 3.1.1 broker on ``host:port`` for the duration of the block."""
    from amqtt.broker import Broker  # deferred: the broker costs ~28 MB and most runs use mosquitto

    config: dict[str, Any] = {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}", "max_connections": 0}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }
    broker = Broker(config)
    try:
        await broker.start()
    except Exception as exc:  # amqtt wraps bind failures in its own exception types
        raise BrokerUnavailable(f"embedded broker cannot listen on {host}:{port}: {exc}") from exc
    log.info("embedded MQTT broker listening on mqtt://%s:%d", host, port)
    try:
        yield BrokerAddress(host=host, port=port)
    finally:
        await broker.shutdown()
