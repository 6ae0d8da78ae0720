"""Sending the node's pod statuses up: the latest per pod, acknowledged, sent again until it is.

The pod manager reports every pod's status whenever it changes (``changed``, its status listener:
one dict assignment, so a pod in a crash loop costs next to nothing here). The uplink's loop sends
what the cloud has not acknowledged, in one ``up/podstatus`` per batch:

* coalesced per pod: only a pod's latest status is ever owed, so a burst of changes while the link
  is down or an ack is awaited goes up as one status, never an older one after a newer;
* each status carries a ``version`` that grows with every status of that pod, across restarts of
  the agent (microseconds since the epoch, or one more than the last): cloud-sync can tell a late
  resend from news;
* what was sent and not acknowledged goes again after ``resend`` seconds, and everything owed goes
  again after a reconnect (``link_up``);
* a pod that is gone (``status`` ``None``) is forgotten once the cloud acknowledged that.

Statuses are not kept on disk: a restarted agent brings its pods back and reports each afresh.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from node_agent.metrics import NodeMetrics
from node_agent.pods import PodStatus
from twin.link import Ack, up_topic
from twin.link_pods import PodReport, PodStatusReport

__all__ = ["PodUplink"]

log = logging.getLogger(__name__)

#: Pods per message.
PODS_PER_MESSAGE = 100
#: Messages whose ack is still awaited; older ones are forgotten (what they carried goes again).
MAX_UNACKED = 1_000
#: Seconds the sender waits, once something is due, for more to go in the same message.
BATCH_WINDOW = 0.01


class PodUplink:
    def __init__(self, node: str, *, resend: float, metrics: NodeMetrics) -> None:
        self.node = node
        self.resend = resend
        self.metrics = metrics
        #: Publishes at QoS 1 (False: not sent) and numbers messages; set by ``attach``.
        self._publish: Callable[[str, bytes], bool] | None = None
        self._next_seq: Callable[[], int] | None = None
        self._latest: dict[str, PodReport] = {}
        self._acked: dict[str, int] = {}
        #: Per pod: the version last sent and when (loop time), since the last connect.
        self._sent: dict[str, tuple[int, float]] = {}
        self._unacked: OrderedDict[int, dict[str, int]] = OrderedDict()
        self._version = 0
        self._up = False
        self._wake = asyncio.Event()

    def attach(self, publish: Callable[[str, bytes], bool], next_seq: Callable[[], int]) -> None:
        self._publish = publish
        self._next_seq = next_seq

    # -- what the pod manager and the link say --------------------------------------------------------

    def changed(self, key: str, uid: str, status: PodStatus | None) -> None:
        """The pod manager's status listener."""
        self.report(key, uid, status.to_kube() if status is not None else None)

    def report(self, key: str, uid: str, status: dict[str, Any] | None) -> None:
        """A status the link makes itself (a pod the node could not even read)."""
        self._version = max(time.time_ns() // 1000, self._version + 1)
        self._latest[key] = PodReport(uid=uid, status=status, version=self._version)
        self._wake.set()

    def link_up(self) -> None:
        """Synced on a new connection: everything owed goes again."""
        self._sent.clear()
        self._up = True
        self._wake.set()

    def link_down(self) -> None:
        self._up = False

    def acknowledged(self, ack: Ack) -> None:
        carried = self._unacked.pop(ack.seq, None)
        if carried is None:
            log.debug("ack of podstatus %d, not awaited (a repeat, or from before a restart)", ack.seq)
            return
        self.metrics.acks.labels("podstatus").inc()
        for key, version in carried.items():
            self._acked[key] = max(self._acked.get(key, 0), version)
            latest = self._latest.get(key)
            if latest is not None and latest.status is None and latest.version <= self._acked[key]:
                # The cloud knows the pod is gone: nothing more to say about it.
                del self._latest[key]
                del self._acked[key]
                self._sent.pop(key, None)

    def owed(self) -> dict[str, PodReport]:
        """What the cloud has not acknowledged, by pod (tests and metrics)."""
        return {k: r for k, r in self._latest.items() if r.version > self._acked.get(k, 0)}

    # -- the loop -------------------------------------------------------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            timeout = self._next_due(loop.time()) if self._up else None
            if not self._wake.is_set():
                try:
                    async with asyncio.timeout(timeout):
                        await self._wake.wait()
                except TimeoutError:
                    pass
            self._wake.clear()
            if self._up:
                await asyncio.sleep(BATCH_WINDOW)
                self._send_due(loop.time())

    def _next_due(self, now: float) -> float | None:
        """Seconds until an unacknowledged status is to go again (``None``: none is waiting)."""
        waits = [
            at + self.resend - now
            for key, (version, at) in self._sent.items()
            if key in self._latest and self._latest[key].version > self._acked.get(key, 0)
        ]
        return max(0.0, min(waits)) if waits else None

    def _send_due(self, now: float) -> None:
        due: dict[str, PodReport] = {}
        for key, report in self.owed().items():
            sent = self._sent.get(key)
            if sent is None or sent[0] < report.version or sent[1] + self.resend <= now:
                due[key] = report
        items = list(due.items())
        for start in range(0, len(items), PODS_PER_MESSAGE):
            chunk = dict(items[start : start + PODS_PER_MESSAGE])
            if not self._send(chunk, now):
                return

    def _send(self, chunk: dict[str, PodReport], now: float) -> bool:
        if self._publish is None or self._next_seq is None:
            return False
        seq = self._next_seq()
        body = PodStatusReport(seq=seq, pods=chunk).model_dump_json().encode()
        if not self._publish(up_topic(self.node, "podstatus"), body):
            return False  # the link is down: all goes again after the next sync
        self.metrics.sent.labels("podstatus").inc()
        self._unacked[seq] = {key: report.version for key, report in chunk.items()}
        while len(self._unacked) > MAX_UNACKED:
            self._unacked.popitem(last=False)
        for key, report in chunk.items():
            self._sent[key] = (report.version, now)
        return True
