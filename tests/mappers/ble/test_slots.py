"""Connection slots of an adapter: devices queue in order, idle holders make room, nothing leaks."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from mappers.ble.slots import AdapterSlots


@dataclass
class Holder:
    """A device's connection as the slots see it, recording what it was asked to do."""

    id: str
    slots: AdapterSlots
    busy: bool = False
    gave_up: int = 0
    told: list[str] = field(default_factory=list)

    @property
    def idle(self) -> bool:
        return self.slots.holds(self) and not self.busy

    async def give_up(self) -> None:
        self.gave_up += 1
        self.slots.release(self)

    def wanted(self) -> None:
        self.told.append("wanted")


async def test_devices_take_free_slots_without_waiting() -> None:
    slots = AdapterSlots("hci0", 2)
    a, b = Holder("a", slots, busy=True), Holder("b", slots, busy=True)
    assert await slots.acquire(a) is False
    assert await slots.acquire(b) is False
    assert await slots.acquire(a) is False  # already holds one
    assert slots.in_use == ["a", "b"] and not slots.wanted


async def test_a_device_waits_for_a_busy_holder_then_gets_its_slot() -> None:
    slots = AdapterSlots("hci0", 1)
    a, b = Holder("a", slots, busy=True), Holder("b", slots)
    await slots.acquire(a)
    waiting = asyncio.create_task(slots.acquire(b))
    await asyncio.sleep(0)
    assert slots.wanted and a.told == ["wanted"] and a.gave_up == 0 and not waiting.done()
    slots.release(a)
    assert await waiting is True
    assert slots.in_use == ["b"] and not slots.wanted


async def test_an_idle_holder_gives_its_slot_up_at_once() -> None:
    slots = AdapterSlots("hci0", 1)
    a, b = Holder("a", slots), Holder("b", slots)
    await slots.acquire(a)
    assert await asyncio.wait_for(slots.acquire(b), 5) is True
    assert a.gave_up == 1 and slots.in_use == ["b"]


async def test_waiting_devices_are_served_first_come_first_served() -> None:
    slots = AdapterSlots("hci0", 1)
    holders = [Holder(name, slots, busy=True) for name in "abcd"]
    await slots.acquire(holders[0])
    order: list[str] = []

    async def take(holder: Holder) -> None:
        await slots.acquire(holder)
        order.append(holder.id)

    tasks = []
    for holder in holders[1:]:
        tasks.append(asyncio.create_task(take(holder)))
        await asyncio.sleep(0)
    for holder in holders:
        slots.release(holder)
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    assert order == ["b", "c", "d"]


async def test_a_device_cancelled_while_it_waits_leaves_the_line() -> None:
    slots = AdapterSlots("hci0", 1)
    a, b, c = Holder("a", slots, busy=True), Holder("b", slots), Holder("c", slots)
    await slots.acquire(a)
    gone = asyncio.create_task(slots.acquire(b))
    stays = asyncio.create_task(slots.acquire(c))
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.sleep(0)
    slots.release(a)
    assert await stays is True
    assert slots.in_use == ["c"]


async def test_a_slot_granted_to_a_device_cancelled_at_that_moment_is_passed_on() -> None:
    slots = AdapterSlots("hci0", 1)
    a, b, c = Holder("a", slots, busy=True), Holder("b", slots, busy=True), Holder("c", slots, busy=True)
    await slots.acquire(a)
    granted = asyncio.create_task(slots.acquire(b))
    after = asyncio.create_task(slots.acquire(c))
    await asyncio.sleep(0)
    slots.release(a)  # b's wait is over, but b has not run yet
    granted.cancel()
    await asyncio.gather(granted, return_exceptions=True)
    assert await after is True
    assert slots.in_use == ["c"]


async def test_the_smallest_limit_asked_for_wins() -> None:
    slots = AdapterSlots("hci0", 3)
    slots.lower_limit(5)
    assert slots.limit == 3
    slots.lower_limit(1)
    assert slots.limit == 1
