"""Connection slots of one Bluetooth adapter, shared in turn by the devices of one runner.

An adapter (or a BLE proxy) holds only a few connections at once; asking for one more fails or,
worse, drops another. So each device takes a slot before it connects and gives it back when it
disconnects. When all slots are taken, a device queues (first come, first served) instead of
failing, and the holders make room:

- a holder that is idle (connected, no exchange under way) gives its slot up at once;
- a holder busy with an exchange gives it up when the exchange ends;
- a holder that keeps its connection for notifications gives it up after its ``turn``.

So three polled sensors on a one-slot adapter are each connected, read and disconnected in turn,
and the adapter never sees more connections than it has slots. Pure asyncio: no bleak here.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Protocol

__all__ = ["AdapterSlots", "SlotHolder"]

log = logging.getLogger(__name__)


class SlotHolder(Protocol):
    """A device's connection as the slots see it (``mappers.ble.link.DeviceLink``)."""

    @property
    def id(self) -> str: ...

    @property
    def idle(self) -> bool:
        """Connected with no exchange under way: it can give its slot up at once."""
        ...

    async def give_up(self) -> None:
        """Disconnect and release the slot, if still idle."""
        ...

    def wanted(self) -> None:
        """Someone waits for a slot (a holder that keeps its connection checks its turn)."""
        ...


class AdapterSlots:
    """``limit`` connection slots of the adapter ``adapter``."""

    def __init__(self, adapter: str, limit: int) -> None:
        self.adapter = adapter
        self.limit = limit
        # By object, not by device id: a changed device's new connection may ask for a slot while
        # the old one is still closing.
        self._holders: dict[int, SlotHolder] = {}
        self._queue: collections.deque[tuple[SlotHolder, asyncio.Future[None]]] = collections.deque()

    @property
    def wanted(self) -> bool:
        """Whether a device waits for a slot."""
        return any(not future.done() for _, future in self._queue)

    @property
    def in_use(self) -> list[str]:
        """The devices holding a slot, for messages."""
        return [holder.id for holder in self._holders.values()]

    def holds(self, holder: SlotHolder) -> bool:
        return id(holder) in self._holders

    def lower_limit(self, limit: int) -> None:
        """Devices on one adapter may disagree about its slots: the smallest number wins."""
        if limit < self.limit:
            log.info(
                "BLE adapter %s: %d connection slot(s) instead of %d, as a device asks",
                self.adapter or "default",
                limit,
                self.limit,
            )
            self.limit = limit

    def _free(self) -> bool:
        return len(self._holders) < self.limit

    async def acquire(self, holder: SlotHolder) -> bool:
        """Take a slot, waiting in line if there is none; whether it had to wait."""
        if self.holds(holder):
            return False
        if self._free() and not self.wanted:
            self._holders[id(holder)] = holder
            return False
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((holder, future))
        try:
            for other in list(self._holders.values()):
                other.wanted()
            # One idle holder makes room at once; busy ones do when their exchange ends.
            for other in list(self._holders.values()):
                if other.idle:
                    await other.give_up()
                    break
            await future
        except BaseException:
            if future.done() and not future.cancelled():
                self.release(holder)  # granted as it was cancelled: pass the slot on
            else:
                future.cancel()
            raise
        return True

    def release(self, holder: SlotHolder) -> None:
        """Give a slot back; the first device in line gets it."""
        if self._holders.pop(id(holder), None) is None:
            return
        while self._queue and self._free():
            waiting, future = self._queue.popleft()
            if future.done():
                continue  # cancelled while it waited
            self._holders[id(waiting)] = waiting
            future.set_result(None)
