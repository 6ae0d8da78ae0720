"""What the embedded broker grants one client and all of them: its defences against hostile clients.

Without these a handful of clients could hold the broker's memory or its connections for ever: a
CONNECT that never comes, a PUBLISH trickled one byte a second, 40 unfinished 16 MiB packets, a
subscriber that never reads. Each limit has a default fit for a gateway and a setting on
``EmbeddedBroker`` (``edgetwin broker`` has flags for the ones an operator may need to change).
A client that passes a limit is disconnected: its socket is aborted, so what it held is freed at
once rather than after the kernel flushed it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

__all__ = ["BrokerLimits", "OutgoingBudget"]

log = logging.getLogger("edgemqtt.broker")

MiB = 1024 * 1024


@dataclass(frozen=True)
class BrokerLimits:
    """The embedded broker's limits; see docs/mqtt.md for the reasoning behind each default."""

    #: Largest packet accepted (its remaining length), refused from its header before it is buffered.
    #: As large as edgetwin's own client takes: a twin's membership list or a cloud sync carries
    #: every device's definition (~1.8 KB each), ~1.8 MiB for a node of 1,000 devices.
    max_packet: int = 16 * MiB
    #: Seconds from the TCP (or TLS) connection to a complete CONNECT.
    connect_timeout: float = 10.0
    #: Seconds a packet may take to arrive once its first byte is here (a trickled PUBLISH is cut).
    packet_timeout: float = 60.0
    #: The keepalive a client gets if it asks for 0 (none) or for more: a client silent for 1.5
    #: times its keepalive is disconnected, so nobody holds a connection for ever doing nothing.
    max_keepalive: int = 3600
    #: Connections open at once; more are closed at once (before CONNECT is read).
    max_connections: int = 1000
    #: Bytes waiting to be sent to one client (its socket buffer and queued QoS 1 messages).
    max_client_buffer: int = 8 * MiB
    #: Bytes held for all clients together: unfinished incoming packets and outgoing buffers.
    max_total_buffer: int = 256 * MiB
    #: QoS 1 messages queued for one client (away with a persistent session, or behind its window).
    max_queued: int = 100_000
    #: QoS 1 messages sent to one client and not acknowledged yet; the rest wait in its queue.
    max_inflight: int = 1_000

    def __post_init__(self) -> None:
        for name in ("max_packet", "max_connections", "max_client_buffer", "max_total_buffer", "max_queued"):
            if getattr(self, name) <= 0:
                raise ValueError(f"broker limit {name} must be positive")
        if self.max_keepalive <= 0 or self.max_keepalive > 65535:
            raise ValueError("broker limit max_keepalive must be 1-65535 seconds")

    def keepalive(self, requested: int) -> int:
        """The keepalive the broker enforces for a client that asked for ``requested`` seconds."""
        if requested == 0 or requested > self.max_keepalive:
            return self.max_keepalive
        return requested


class OutgoingBudget:
    """Counts the bytes held for clients against ``max_total_buffer``.

    Each client's share is what was last measured for it (socket buffer plus queue), refreshed at
    each write to it. Shares only shrink between measurements (the kernel drains sockets), so the
    sum can only overestimate; when it says the cap is passed, every share is measured again
    before anybody is disconnected.
    """

    def __init__(self, limits: BrokerLimits) -> None:
        self.limits = limits
        self.incoming = 0  # bytes of unfinished incoming packets, all clients
        self._shares: dict[object, int] = {}
        self._outgoing = 0

    @property
    def total(self) -> int:
        return self.incoming + self._outgoing

    def set_share(self, owner: object, size: int) -> None:
        self._outgoing += size - self._shares.get(owner, 0)
        if size:
            self._shares[owner] = size
        else:
            self._shares.pop(owner, None)

    def forget(self, owner: object) -> None:
        self.set_share(owner, 0)

    def over(self) -> bool:
        return self.total > self.limits.max_total_buffer

    def owners(self) -> list[object]:
        return list(self._shares)

    def largest(self) -> object | None:
        return max(self._shares, key=self._shares.__getitem__, default=None)
