"""Counters, gauges and a histogram as plain numbers, shown as ``prometheus_client`` shows its own.

``node_agent.metrics`` counts with these so that a node imports ``prometheus_client`` only when it
serves its metrics. Each ``collect`` builds the ``Metric`` that ``prometheus_client.Counter``,
``Gauge`` or ``Histogram`` would (same samples, labels, ``_created`` series and order), so a scrape
reads the same text. Values change in the event loop and are read by the HTTP server's thread:
``collect`` works on a copy of each dict (copying a dict is atomic under the GIL).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

__all__ = ["Counts", "Histogram", "Level"]


def _metric(name: str, documentation: str, kind: str) -> Metric:
    from prometheus_client.metrics_core import Metric

    return Metric(name, documentation, kind)


def _with_created() -> bool:
    # prometheus_client's own switch (PROMETHEUS_DISABLE_CREATED_SERIES, disable_created_metrics()).
    from prometheus_client import metrics

    return bool(getattr(metrics, "_use_created", True))


class _Count:
    __slots__ = ("created", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.created = time.time()

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount

    def set(self, value: float) -> None:
        self.value = float(value)


class _Labelled:
    """A metric's children, one per value of its label, made on first use."""

    _children: dict[str, _Count]

    def labels(self, value: str) -> _Count:
        child = self._children.get(value)
        if child is None:
            child = self._children[value] = _Count()
        return child


class Counts(_Labelled):
    """A counter with one label (``prometheus_client.Counter(name, doc, [label])``)."""

    def __init__(self, name: str, documentation: str, label: str) -> None:
        self.name, self.documentation, self.label = name, documentation, label
        self._children = {}

    def collect(self) -> Metric:
        metric = _metric(self.name, self.documentation, "counter")
        created = _with_created()
        for value, child in dict(self._children).items():
            labels = {self.label: value}
            metric.add_sample(self.name + "_total", labels, child.value)
            if created:
                metric.add_sample(self.name + "_created", labels, child.created)
        return metric


class Level(_Labelled):
    """A gauge, with no label or one (``prometheus_client.Gauge``), or read from a function."""

    def __init__(self, name: str, documentation: str, label: str | None = None) -> None:
        self.name, self.documentation, self.label = name, documentation, label
        self._value = _Count()
        self._function: Callable[[], float] | None = None
        self._children = {}

    def set(self, value: float) -> None:
        self._value.set(value)

    def set_function(self, function: Callable[[], float]) -> None:
        self._function = function

    def collect(self) -> Metric:
        metric = _metric(self.name, self.documentation, "gauge")
        if self.label is not None:
            for value, child in dict(self._children).items():
                metric.add_sample(self.name, {self.label: value}, child.value)
        else:
            function = self._function
            metric.add_sample(self.name, {}, function() if function is not None else self._value.value)
        return metric


class Histogram:
    """A histogram with no label (``prometheus_client.Histogram(name, doc, buckets=...)``)."""

    def __init__(self, name: str, documentation: str, buckets: Sequence[float]) -> None:
        self.name, self.documentation = name, documentation
        self._bounds = [float(b) for b in buckets]
        if self._bounds[-1] != math.inf:
            self._bounds.append(math.inf)
        self._counts = [0.0] * len(self._bounds)
        self._sum = 0.0
        self._created = time.time()

    def observe(self, amount: float) -> None:
        self._sum += amount
        for index, bound in enumerate(self._bounds):
            if amount <= bound:
                self._counts[index] += 1
                break

    def collect(self) -> Metric:
        from prometheus_client.utils import floatToGoString

        metric = _metric(self.name, self.documentation, "histogram")
        total = 0.0
        for bound, count in zip(self._bounds, list(self._counts), strict=True):
            total += count
            le = floatToGoString(bound)  # type: ignore[no-untyped-call]  # the library's own spelling
            metric.add_sample(self.name + "_bucket", {"le": le}, total)
        metric.add_sample(self.name + "_count", {}, total)
        if self._bounds[0] >= 0:
            metric.add_sample(self.name + "_sum", {}, self._sum)
        if _with_created():
            metric.add_sample(self.name + "_created", {}, self._created)
        return metric
