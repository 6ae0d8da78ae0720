"""The node's plain counters read as prometheus_client's own Counter, Gauge and Histogram would."""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from node_agent._counts import Counts, Level
from node_agent._counts import Histogram as PlainHistogram


class _Collected:
    def __init__(self, *metrics: Counts | Level | PlainHistogram) -> None:
        self.metrics = metrics

    def collect(self):  # type: ignore[no-untyped-def]  # prometheus_client's collector protocol
        return [m.collect() for m in self.metrics]


def _text(registry: CollectorRegistry) -> str:
    # Creation times differ by when each was made: compare everything else.
    return re.sub(r"(_created(\{[^}]*\})?) \S+", r"\1 T", generate_latest(registry).decode())


def test_plain_counts_are_exposed_as_prometheus_client_exposes_its_own() -> None:
    library = CollectorRegistry(auto_describe=True)
    counter = Counter("c", "Counted", ["kind"], registry=library)
    gauge = Gauge("g", "Level", registry=library)
    labelled = Gauge("gl", "Levels", ["state"], registry=library)
    called = Gauge("gf", "From a function", registry=library)
    histogram = Histogram("h", "Seconds", buckets=(0.1, 1, 2.5), registry=library)

    plain = (
        Counts("c", "Counted", "kind"),
        Level("g", "Level"),
        Level("gl", "Levels", "state"),
        Level("gf", "From a function"),
        PlainHistogram("h", "Seconds", buckets=(0.1, 1, 2.5)),
    )
    ours = CollectorRegistry(auto_describe=True)
    ours.register(_Collected(*plain))

    for c in (counter, plain[0]):
        c.labels("sync").inc()
        c.labels("ack").inc()
        c.labels("sync").inc()
    for g in (gauge, plain[1]):
        g.set(3)
    for g in (labelled, plain[2]):
        g.labels("online").set(5)
        g.labels("offline").set(0)
    for g in (called, plain[3]):
        g.set_function(lambda: 1.0)
    for h in (histogram, plain[4]):
        for seconds in (0.05, 0.3, 7):
            h.observe(seconds)
    assert _text(ours) == _text(library)
