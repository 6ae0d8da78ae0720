"""One device's BLE connection: a bleak client opened on demand inside an adapter slot.

The one place that drives ``bleak.BleakClient``; its exceptions are translated here, once:
a peripheral that does not advertise is ``PeripheralNotFound``, one that drops the link is
``ConnectionLost`` (bleak's ``disconnected_callback``), a timeout or a missing Bluetooth stack is
``DeviceUnreachable``, a GATT error answer is ``DeviceRefused``.

Every exchange runs inside ``use()``: it takes a slot of the adapter (``mappers.ble.slots``),
connects if needed, and afterwards keeps the connection unless another device waits for the slot.
A requested disconnect (giving the slot up) is not a lost connection: BlueZ calls the disconnected
callback for both, so callbacks of a client the link already let go are ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from bleak import BleakClient, BleakScanner
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.device import BLEDevice
from bleak.exc import BleakDeviceNotFoundError, BleakError, BleakGATTProtocolError

from mappers.ble.backend import Backend
from mappers.ble.config import BleConfig
from mappers.ble.errors import CharacteristicNotFound, ConnectionLost, PeripheralNotFound
from mappers.ble.slots import AdapterSlots
from twin.errors import DeviceRefused, DeviceUnreachable

__all__ = ["DeviceLink", "Listener", "find_characteristic", "translate"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Told ``"lost"`` when the peripheral drops the link, ``"wanted"`` when a device waits for a slot
#: and ``"released"`` when this device gave its slot up.
Listener = Callable[[str], None]


def find_characteristic(
    client: BleakClient, uuid: str, service: str | None = None
) -> BleakGATTCharacteristic | None:
    """The first characteristic with ``uuid`` (in ``service``); bleak refuses a UUID found twice."""
    for char in client.services.characteristics.values():
        if char.uuid == uuid and (service is None or char.service_uuid == service):
            return char
    return None


def translate(exc: BaseException, what: str) -> Exception:
    """A bleak (or OS) exception as the error of ``twin.errors`` it means."""
    if isinstance(exc, BleakDeviceNotFoundError):
        return PeripheralNotFound(f"{what}: not found (out of range, switched off, or another address)")
    if isinstance(exc, BleakGATTProtocolError):
        return DeviceRefused(f"{what}: the device answered GATT error 0x{int(exc.code):02x} ({exc.args[1]})")
    if isinstance(exc, TimeoutError):
        return DeviceUnreachable(f"{what}: no answer in time")
    if isinstance(exc, BleakError):
        return DeviceUnreachable(f"{what}: {exc}")
    if isinstance(exc, OSError):
        return DeviceUnreachable(
            f"{what}: Bluetooth is not available on this machine ({type(exc).__name__}: {exc}); "
            "BlueZ and D-Bus are needed on Linux; for simulated peripherals use adapter: simulated "
            "(or EDGETWIN_BLE_ADAPTER=simulated)"
        )
    return DeviceUnreachable(f"{what}: {type(exc).__name__}: {exc}")


class DeviceLink:
    """The connection of one device; ``use()`` for each exchange."""

    def __init__(self, device_id: str, config: BleConfig, backend: Backend, slots: AdapterSlots) -> None:
        self.id = device_id
        self.config = config
        self.backend = backend
        self.slots = slots
        self.timeout = config.timeout / 1000
        self.turn = config.turn / 1000
        self.client: BleakClient | None = None
        self._device: BLEDevice | None = None  # found by the last scan
        self.connections = 0  # how often it connected; a watch re-subscribes on a new connection
        self.held_since = 0.0
        self._users = 0
        self._lock = asyncio.Lock()
        self._lost = False
        self._waited = False
        self._listeners: list[Listener] = []

    # -- what the slots ask (SlotHolder) ------------------------------------------------------------

    @property
    def idle(self) -> bool:
        return self.client is not None and self._users == 0 and not self._lock.locked()

    async def give_up(self) -> None:
        async with self._lock:
            if self.client is not None and self._users == 0:
                log.debug("%s: giving its connection slot to a waiting device", self.id)
                await self._disconnect()
                self._tell("released")

    def wanted(self) -> None:
        self._tell("wanted")

    # -- for the plugin -----------------------------------------------------------------------------

    def listen(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _tell(self, event: str) -> None:
        for listener in list(self._listeners):
            listener(event)

    @contextlib.asynccontextmanager
    async def use(self) -> AsyncIterator[BleakClient]:
        """The connected client for one exchange (connecting first, in a slot, if needed)."""
        async with self._lock:
            if self._lost:
                raise ConnectionLost(f"{self.config.target} disconnected (out of range or switched off)")
            if self.client is None:
                await self._connect()
            client = self.client
            assert client is not None
            self._users += 1
        try:
            yield client
        finally:
            self._users -= 1
            if self._users == 0 and self.slots.wanted and self.client is not None:
                await self.give_up()

    async def call(self, what: str, exchange: Awaitable[T]) -> T:
        """Await one GATT exchange within the timeout; its exceptions translated."""
        try:
            async with asyncio.timeout(self.timeout):
                return await exchange
        except (BleakError, TimeoutError, OSError) as exc:
            # The disconnected callback may still be on its way when the exchange fails.
            if self._lost or (self.client is not None and not self.client.is_connected):
                await self.drop()
                raise ConnectionLost(f"{what}: {self.config.target} disconnected") from exc
            error = translate(exc, what)
            if isinstance(error, DeviceUnreachable):
                await self.drop()  # a link that timed out is not to be trusted again
            raise error from exc

    def characteristic(self, uuid: str, service: str | None = None) -> BleakGATTCharacteristic:
        if self.client is None:
            raise ConnectionLost(f"{self.config.target}: not connected")
        char = find_characteristic(self.client, uuid, service)
        if char is None:
            where = f" in service {service}" if service else ""
            raise CharacteristicNotFound(f"{self.config.target} has no characteristic {uuid}{where}")
        return char

    async def drop(self) -> None:
        """Forget a connection that failed; the next ``use()`` reports it lost."""
        if self.client is not None:
            self._lost = True
            await self._disconnect()

    async def close(self) -> None:
        async with self._lock:
            await self._disconnect()
        self.slots.release(self)

    # -- connecting ---------------------------------------------------------------------------------

    async def _connect(self) -> None:
        # Find it first, outside a slot: a device out of range never holds one while others wait.
        device = self._device or await self._find()
        loop = asyncio.get_running_loop()
        asked = loop.time()
        if not self.slots.holds(self) and len(self.slots.in_use) >= self.slots.limit:
            # Logged once per device: later turns on a shared adapter are routine.
            log.log(
                logging.DEBUG if self._waited else logging.INFO,
                "%s: waiting for a BLE connection slot on %s (%d of %d in use: %s)",
                self.id,
                self.backend.describe(),
                len(self.slots.in_use),
                self.slots.limit,
                ", ".join(self.slots.in_use),
            )
        waited = await self.slots.acquire(self)
        if waited and not self._waited:
            self._waited = True
            log.info("%s: got a BLE connection slot after %.1fs", self.id, loop.time() - asked)
        try:
            self.client = await self._open(device)
        except BaseException:
            self._device = None  # scan again next time: it may have moved on
            self.slots.release(self)
            raise
        self.connections += 1
        self.held_since = loop.time()

    async def _find(self) -> BLEDevice:
        """Scan for the peripheral (bleak recommends connecting to a found ``BLEDevice``)."""
        config, backend = self.config, self.backend
        try:
            if config.macAddress:
                found = await BleakScanner.find_device_by_address(
                    config.macAddress, timeout=self.timeout, **backend.scan_args()
                )
            else:
                assert config.localName is not None
                found = await BleakScanner.find_device_by_name(
                    config.localName, timeout=self.timeout, **backend.scan_args()
                )
        except (BleakError, OSError) as exc:
            raise translate(exc, f"scanning for {config.target}") from exc
        if found is None:
            raise PeripheralNotFound(
                f"{config.target} is not advertising on {backend.describe()} "
                "(out of range, switched off, or connected to another central)"
            )
        self._device = found
        return found

    async def _open(self, device: BLEDevice) -> BleakClient:
        config, backend = self.config, self.backend
        client = BleakClient(
            device,
            disconnected_callback=self._on_disconnected,
            timeout=self.timeout,
            pair=config.pair,
            backend=backend.client,
            bluez=backend.bluez,
        )
        try:
            async with asyncio.timeout(self.timeout + 1):
                await client.connect()
        except (BleakError, TimeoutError, OSError) as exc:
            with contextlib.suppress(BleakError, TimeoutError, OSError):
                await client.disconnect()
            raise translate(exc, f"connecting to {config.target}") from exc
        return client

    async def _disconnect(self) -> None:
        # Let the client go first: the disconnected callback it fires must find nothing to report.
        client, self.client = self.client, None
        if client is None:
            return
        try:
            async with asyncio.timeout(self.timeout):
                await client.disconnect()
        except (BleakError, TimeoutError, OSError) as exc:
            log.debug("%s: disconnecting: %s", self.id, exc)
        finally:
            # Only once the link is down: the adapter never holds more connections than slots.
            self.slots.release(self)

    def _on_disconnected(self, client: BleakClient) -> None:
        if client is not self.client:
            return  # a client we let go of ourselves
        log.debug("%s: %s dropped the connection", self.id, self.config.target)
        self.client = None
        self._lost = True
        self.slots.release(self)
        self._tell("lost")
