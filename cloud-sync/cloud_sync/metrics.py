"""cloud-sync's Prometheus metrics, on ``--metrics-port``.

Counters and a histogram updated where things happen, and two gauges read when scraped: devices by
``status.state`` and edge nodes by readiness, counted by the watches as objects change (the
scrape runs in prometheus_client's thread and only copies those counts). Each ``CloudSync`` has
a registry of its own, so several in one process (tests, two replicas) do not collide.
"""

from __future__ import annotations

import logging
from collections import Counter as Tally
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["Metrics"]

log = logging.getLogger(__name__)


class _Gauges(Collector):
    def __init__(self, devices: Tally[str], nodes: Tally[str]) -> None:
        self._devices = devices
        self._nodes = nodes

    def collect(self) -> Iterator[GaugeMetricFamily]:
        devices = GaugeMetricFamily("edgetwin_cloud_devices", "Devices by status.state", labels=["state"])
        for state, count in sorted(dict(self._devices).items()):
            devices.add_metric([state], count)
        yield devices
        nodes = GaugeMetricFamily(
            "edgetwin_cloud_nodes", "Edge nodes by their Ready condition", labels=["ready"]
        )
        for ready, count in sorted(dict(self._nodes).items()):
            nodes.add_metric([ready], count)
        yield nodes


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.messages_in = Counter(
            "edgetwin_cloud_messages_in", "Link messages received from nodes", ["kind"], registry=registry
        )
        self.messages_out = Counter(
            "edgetwin_cloud_messages_out", "Link messages sent to nodes", ["kind"], registry=registry
        )
        self.messages_invalid = Counter(
            "edgetwin_cloud_messages_invalid",
            "Link messages from nodes that were malformed or invalid, and ignored",
            ["kind"],
            registry=registry,
        )
        self.sync_latency = Histogram(
            "edgetwin_cloud_sync_latency_seconds",
            "From the time a node's twin took a reported value in to its status write",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=registry,
        )
        self.api_writes = Counter(
            "edgetwin_cloud_api_writes", "Writes to the Kubernetes API", ["resource"], registry=registry
        )
        self.api_errors = Counter(
            "edgetwin_cloud_api_errors",
            "Failed Kubernetes API requests, by HTTP status (0: no answer)",
            ["resource", "code"],
            registry=registry,
        )
        #: Devices by status.state ("none" when unset), and edge nodes by Ready ("true", "false",
        #: "unknown"), kept by the watches.
        self.device_states: Tally[str] = Tally()
        self.node_readiness: Tally[str] = Tally()
        registry.register(_Gauges(self.device_states, self.node_readiness))

    def serve(self, port: int, host: str = "0.0.0.0") -> Callable[[], None]:
        """Serve ``/metrics`` on ``host:port`` in a thread; returns the function that stops it."""
        server: Any
        server, thread = start_http_server(port, addr=host, registry=self.registry)
        log.info("metrics on http://%s:%d/metrics", host, server.server_port)

        def stop() -> None:
            server.shutdown()
            server.server_close()
            thread.join(5)

        return stop
