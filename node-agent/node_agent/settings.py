"""How a node reaches its cloud (``CloudSettings``): kept apart from the link itself, so that a node
can be configured without loading the link's code before its twin serves."""

from __future__ import annotations

from dataclasses import dataclass, field

from edgemqtt.client import BrokerAddress

__all__ = ["CloudSettings"]


@dataclass(frozen=True)
class CloudSettings:
    """How a node reaches its cloud; the defaults are docs/cloud-link.md's."""

    #: The cloud broker; its user name and password are replaced by the node's.
    broker: BrokerAddress
    token: str = field(repr=False)
    heartbeat: float = 10.0
    #: Seconds after which what was sent and not acknowledged is sent again (and a hello with no sync).
    resend: float = 10.0
    #: Seconds between logins the broker refused: a wrong token (a person must fix it), or a node the
    #: cloud has not admitted yet, which it does as soon as a Device names the node: not a minute late.
    refused_delay: float = 10.0
    reconnect_delays: tuple[float, ...] = (0.5, 1.0, 2.0, 5.0, 10.0)
