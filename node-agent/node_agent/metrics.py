"""The node's Prometheus metrics: its devices and its cloud link, served on ``--metrics-port``.

Each gateway has metrics of its own (several gateways run in one test process). Gauges that need a
look at every device (devices by state, outbox depth) are set from the event loop every few seconds
(``refresh``), never computed in the HTTP server's thread while the loop changes them.

The link counts whether or not anyone scrapes, but ``prometheus_client`` (and the HTTP server,
``http``, ``email`` and ``urllib`` it brings: ~2.5 MB of a node's memory) is imported only by
``serve``, for a node started with ``--metrics-port``. Until then the figures are plain numbers
here (``node_agent._counts``); served, they are read as ``prometheus_client``'s own metric types
would show them.
"""

from __future__ import annotations

import logging
from collections import Counter as Tally
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from node_agent._counts import Counts, Histogram, Level
from node_agent.outbox import cloud_state
from twin.service import TwinService

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

__all__ = ["NodeMetrics"]

log = logging.getLogger(__name__)

_STATES = ("online", "offline", "unknown", "unhealthy")


class NodeMetrics:
    def __init__(self, node: str) -> None:
        self.node = node
        self.received = Counts(
            "edgetwin_node_link_messages_received", "Messages from the cloud, by kind", "kind"
        )
        self.sent = Counts("edgetwin_node_link_messages_sent", "Messages to the cloud, by kind", "kind")
        self.refused = Counts(
            "edgetwin_node_link_messages_refused",
            "Messages from the cloud that were malformed or not for this node, by kind",
            "kind",
        )
        self.acks = Counts(
            "edgetwin_node_link_acks", "Acknowledgements of reports and desired values, by kind", "kind"
        )
        self.connected = Level(
            "edgetwin_node_link_connected", "1 while connected to the cloud broker and synced"
        )
        self.sync_seconds = Histogram(
            "edgetwin_node_link_sync_seconds",
            "Seconds from a hello to its sync applied",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.outbox_devices = Level("edgetwin_node_outbox_devices", "Devices that owe the cloud something")
        self.outbox_values = Level(
            "edgetwin_node_outbox_values",
            "Values owed to the cloud (reported, observed desired, state, edge-set desired)",
        )
        self.devices = Level(
            "edgetwin_node_devices", "The node's devices by state (as the CRD spells it)", "state"
        )
        #: Set by the cloud link: how much its outbox holds, as ``(devices, values)``.
        self.outbox_depth: Callable[[], tuple[int, int]] | None = None

    def collect(self) -> Iterator[Metric]:
        """Every metric as ``prometheus_client`` shows it (a collector's ``collect``)."""
        for metric in (
            self.received,
            self.sent,
            self.refused,
            self.acks,
            self.connected,
            self.sync_seconds,
            self.outbox_devices,
            self.outbox_values,
            self.devices,
        ):
            yield metric.collect()

    def serve(self, port: int, host: str = "0.0.0.0") -> None:
        """Serve ``/metrics`` on ``port`` (all interfaces by default) from a thread of its own."""
        from prometheus_client import CollectorRegistry, start_http_server

        registry = CollectorRegistry(auto_describe=True)
        registry.register(self)
        start_http_server(port, addr=host, registry=registry)
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
