"""The node's Prometheus metrics: its devices and its cloud link, served on ``--metrics-port``.

Each gateway has a registry of its own (several gateways run in one test process). Gauges that
need a look at every device (devices by state, outbox depth) are set from the event loop every
few seconds (``refresh``), never computed in the HTTP server's thread while the loop changes them.
"""

from __future__ import annotations

import logging
from collections import Counter as Tally
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from node_agent.outbox import cloud_state
from twin.service import TwinService

__all__ = ["NodeMetrics"]

log = logging.getLogger(__name__)

_STATES = ("online", "offline", "unknown", "unhealthy")


class NodeMetrics:
    def __init__(self, node: str) -> None:
        self.node = node
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.received = Counter(
            "edgetwin_node_link_messages_received", "Messages from the cloud, by kind", ["kind"], registry=r
        )
        self.sent = Counter(
            "edgetwin_node_link_messages_sent", "Messages to the cloud, by kind", ["kind"], registry=r
        )
        self.refused = Counter(
            "edgetwin_node_link_messages_refused",
            "Messages from the cloud that were malformed or not for this node, by kind",
            ["kind"],
            registry=r,
        )
        self.acks = Counter(
            "edgetwin_node_link_acks",
            "Acknowledgements of reports and desired values, by kind",
            ["kind"],
            registry=r,
        )
        self.connected = Gauge(
            "edgetwin_node_link_connected", "1 while connected to the cloud broker and synced", registry=r
        )
        self.sync_seconds = Histogram(
            "edgetwin_node_link_sync_seconds",
            "Seconds from a hello to its sync applied",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.outbox_devices = Gauge(
            "edgetwin_node_outbox_devices", "Devices that owe the cloud something", registry=r
        )
        self.outbox_values = Gauge(
            "edgetwin_node_outbox_values",
            "Values owed to the cloud (reported, observed desired, state, edge-set desired)",
            registry=r,
        )
        self.devices = Gauge(
            "edgetwin_node_devices",
            "The node's devices by state (as the CRD spells it)",
            ["state"],
            registry=r,
        )
        #: Set by the cloud link: how much its outbox holds, as ``(devices, values)``.
        self.outbox_depth: Callable[[], tuple[int, int]] | None = None

    def serve(self, port: int, host: str = "0.0.0.0") -> None:
        """Serve ``/metrics`` on ``port`` (all interfaces by default) from a thread of its own."""
        start_http_server(port, addr=host, registry=self.registry)
        log.info("metrics of node %s on http://%s:%d/metrics", self.node, host, port)

    def refresh(self, service: TwinService) -> None:
        """Set the gauges that look at every device; call from the event loop."""
        states = Tally(
            cloud_state(twin.state)
            for device_id, twin in service.twins.items()
            if device_id in service.devices
        )
        for state in {*_STATES, *states}:
            self.devices.labels(state).set(states.get(state, 0))
        if self.outbox_depth is not None:
            devices, values = self.outbox_depth()
            self.outbox_devices.set(devices)
            self.outbox_values.set(values)
