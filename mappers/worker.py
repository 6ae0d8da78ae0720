"""One device's worker: poll, report, write desired values, publish state, reconnect.

Each device has one worker task, so everything that touches the device happens in order (a desired
write never overlaps a poll of the same device); devices run in parallel. The worker owns the
plugin instance: it enters it (connect), polls properties when their ``collectCycle`` is due,
hands readings to the ``ReportBuffer``, writes desired values then reads them back, and on
``DeviceUnreachable`` leaves it (close), marks the device offline and tries again after a backoff.
Transitions are logged once: ERROR when a device fails, INFO when it recovers, DEBUG while it stays
down (Home Assistant's update coordinator).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mappers.binding import Binding, bind_device
from mappers.bus import Buses
from mappers.membership import Member
from mappers.plugin import AnyMapper, MappedProperty, Mapper, ReadResult
from mappers.reporting import Reading, ReportBuffer
from mappers.settings import RunnerSettings
from twin.errors import DeviceUnreachable, InvalidManifest, InvalidValue, PermanentError, TemporaryError
from twin.models import cycle_seconds
from twin.topics import Action, device_topic
from twin.values import format_value
from twin.wire import encode_request, encode_state_update, encode_update, now_ms

__all__ = ["REPORT_PREFIX", "DeviceWorker", "Publish"]

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes], None]

_event_ids = itertools.count(1)

#: ``event_id`` prefix of the reports a mapper sends; results with it are answers to the mapper.
REPORT_PREFIX = "mapper-report-"


@dataclass(frozen=True)
class _Desired:
    values: dict[str, str]


@dataclass(frozen=True)
class _Pushed:
    name: str
    value: ReadResult


@dataclass(frozen=True)
class _Failed:
    error: BaseException


_Event = _Desired | _Pushed | _Failed


class DeviceWorker:
    """Serves one device with one plugin class until cancelled."""

    def __init__(
        self,
        member: Member,
        plugin: AnyMapper,
        *,
        publish: Publish,
        buses: Buses,
        settings: RunnerSettings,
    ) -> None:
        self.member = member
        self.id = member.id
        self.plugin = plugin
        self.state = "unknown"
        self._publish = publish
        self._buses = buses
        self._settings = settings
        self._inbox: asyncio.Queue[_Event] = asyncio.Queue()
        self._reports = ReportBuffer()
        self._attempted: dict[str, str] = {}  # desired values already written (or tried) this connection
        self._refused: dict[str, str] = {}  # property -> why the device refused its desired value
        self._read_errors: dict[str, str] = {}  # property -> why its last read failed
        self._result_errors: set[str] = set()
        self._attempt = 0
        self._failure: str | None = None
        self._binding: Binding | None = None

    # -- inputs from the runner (called in the loop, never block) ---------------------------------

    def deliver_desired(self, values: dict[str, str]) -> None:
        if values:
            self._inbox.put_nowait(_Desired(values))

    def deliver_update_error(self, code: int, reason: str) -> None:
        """The twin refused a report of ours: logged once per reason."""
        if reason in self._result_errors:
            log.debug("%s: twin still refuses a report: %s %s", self.id, code, reason)
            return
        self._result_errors.add(reason)
        log.error("%s: the twin refused a reported value (%s): %s", self.id, code, reason)

    # -- the loop ----------------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            self._binding = bind_device(
                self.member.device,
                self.member.model,
                self.plugin,
                default_collect_cycle=self._settings.default_collect_cycle,
            )
        except InvalidManifest as exc:
            self._set_state("unhealthy", str(exc))
            return
        for problem in self._binding.problems:
            log.error("%s: property left out: %s", self.id, problem)
        while True:
            try:
                mapper = self.plugin(self._binding.device, self._buses)
                async with mapper:
                    await self._serve(mapper)
            except TemporaryError as exc:
                self._set_state("offline", _describe(exc))
            except PermanentError as exc:
                self._set_state("unhealthy", _describe(exc))
            except Exception as exc:  # a plugin bug must not stop the other devices
                if self._failure is None:
                    log.exception("%s: the %s mapper failed", self.id, self.plugin.protocol)
                self._set_state("unhealthy", f"mapper error: {type(exc).__name__}: {exc}")
            _raise_if_cancelled()
            delay = self._settings.reconnect_delay(self._attempt)
            self._attempt += 1
            log.debug("%s: reconnecting in %.1fs", self.id, delay)
            await asyncio.sleep(delay)

    async def _serve(self, mapper: Mapper[Any, Any]) -> None:
        assert self._binding is not None
        device = self._binding.device
        self._reports.forget()
        while not self._inbox.empty():
            # Left from the last connection; pending desired values come again with the twin's answer.
            self._inbox.get_nowait()
        self._attempted.clear()
        self._refused.clear()
        self._read_errors.clear()
        self._request_twin()
        pushed = [p for p in device.properties if mapper.pushes(p)]
        # Even with nothing pushed: ``watch`` may report a lost connection between polls.
        pump = asyncio.create_task(self._pump(mapper, pushed), name=f"watch {self.id}")
        try:
            await self._poll(mapper)
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump

    async def _pump(self, mapper: Mapper[Any, Any], pushed: list[MappedProperty[Any]]) -> None:
        try:
            async for name, value in mapper.watch(pushed):
                self._inbox.put_nowait(_Pushed(name, value))
        except Exception as exc:  # noqa: BLE001 - handed to the worker, which logs and classifies it
            self._inbox.put_nowait(_Failed(exc))

    async def _poll(self, mapper: Mapper[Any, Any]) -> None:
        assert self._binding is not None
        loop = asyncio.get_running_loop()
        props = self._binding.device.properties
        due = dict.fromkeys((p.name for p in props), loop.time())
        state_cycle = self._state_cycle()
        state_due = loop.time() + state_cycle if state_cycle else math.inf
        first = True
        while True:
            _raise_if_cancelled()
            wake = min(min(due.values(), default=math.inf), state_due)
            report_due = self._reports.next_due()
            if report_due is not None:
                wake = min(wake, report_due)
            event: _Event | None = None
            if not first:
                timeout = None if math.isinf(wake) else max(0.0, wake - loop.time())
                try:
                    async with asyncio.timeout(timeout):
                        event = await self._inbox.get()
                except TimeoutError:
                    event = None
            if event is not None:
                await self._handle(mapper, event)
            now = loop.time()
            ready = [p for p in props if due[p.name] <= now]
            if ready:
                results = await mapper.read_many(ready)
                self._take_results(ready, results)
                after = loop.time()
                for prop in ready:
                    if mapper.pushes(prop):
                        due[prop.name] = math.inf  # read once; then the device pushes its changes
                        continue
                    nxt = due[prop.name] + prop.collect_cycle
                    due[prop.name] = nxt if nxt > after else after + prop.collect_cycle
            if first:
                first = False
                self._attempt = 0
            self._update_health()
            now = loop.time()
            self._flush(now)
            if now >= state_due:
                # stateReport.reportCycle: the state again, so the twin's lastOnlineTime stays fresh.
                self._publish_state()
                state_due = now + state_cycle

    def _take_results(self, props: list[MappedProperty[Any]], results: dict[str, ReadResult]) -> None:
        stamp = now_ms()
        now = asyncio.get_running_loop().time()
        for prop in props:
            result = results.get(prop.name)
            if result is None:
                continue
            if not isinstance(result, PermanentError):
                try:
                    text = format_value(result, prop.type)
                except InvalidValue as exc:
                    result = exc  # the device gave a value the twin cannot hold (NaN for an INT…)
            if isinstance(result, PermanentError):
                reason = _describe(result)
                if self._read_errors.get(prop.name) != reason:
                    log.error("%s: reading %s failed: %s", self.id, prop.name, reason)
                self._read_errors[prop.name] = reason
                continue
            if self._read_errors.pop(prop.name, None) is not None:
                log.info("%s: reading %s works again", self.id, prop.name)
            self._reports.offer(prop.name, Reading(text, stamp), cycle=prop.report_cycle, now=now)

    async def _handle(self, mapper: Mapper[Any, Any], event: _Event) -> None:
        assert self._binding is not None
        if isinstance(event, _Failed):
            raise event.error
        if isinstance(event, _Pushed):
            prop = self._binding.device.property(event.name)
            if prop is not None:
                self._take_results([prop], {prop.name: event.value})
            return
        for name, text in event.values.items():
            await self._write_desired(mapper, name, text)

    async def _write_desired(self, mapper: Mapper[Any, Any], name: str, text: str) -> None:
        assert self._binding is not None
        prop = self._binding.device.property(name)
        if prop is None:
            log.debug("%s: desired %s has no visitor; not for this mapper", self.id, name)
            return
        if self._attempted.get(name) == text:
            return
        self._attempted[name] = text
        try:
            # Checked here whatever topic it came by: any client of the broker can forge a delta.
            value = prop.schema.check_desired(text)
        except InvalidValue as exc:
            log.error("%s: desired %s=%s refused, not written: %s", self.id, name, text[:60], exc)  # noqa: TRY400
            return
        try:
            await mapper.write(prop, value)
        except DeviceUnreachable:
            del self._attempted[name]
            raise
        except PermanentError as exc:
            reason = _describe(exc)
            log.error("%s: desired %s=%s was not written: %s", self.id, name, text, reason)  # noqa: TRY400
            self._refused[name] = reason
            return
        if self._refused.pop(name, None) is not None:
            log.info("%s: desired %s=%s written after an earlier refusal", self.id, name, text)
        else:
            log.info("%s: desired %s=%s written", self.id, name, text)
        # Read back so that the reported value confirms what the device holds now.
        result = (await mapper.read_many([prop])).get(name)
        if result is None or isinstance(result, PermanentError):
            return
        try:
            text = format_value(result, prop.type)
        except InvalidValue:
            return  # the next poll reports the problem
        self._reports.offer(
            name,
            Reading(text, now_ms()),
            cycle=prop.report_cycle,
            now=asyncio.get_running_loop().time(),
            force=True,
        )

    # -- outputs -----------------------------------------------------------------------------------

    def _update_health(self) -> None:
        problems = [f"{n}: {r}" for n, r in {**self._read_errors, **self._refused}.items()]
        if problems:
            self._set_state("unhealthy", "; ".join(sorted(problems)))
        else:
            self._set_state("online", None)

    def _flush(self, now: float) -> None:
        readings = self._reports.take(now)
        if not readings:
            return
        reported = {name: (r.value, r.timestamp_ms) for name, r in readings.items()}
        # A non-empty event id tells the twin's answers to our reports from answers to apps.
        body = encode_update(f"{REPORT_PREFIX}{next(_event_ids)}", reported=reported)
        self._publish(device_topic(self.id, Action.TWIN_UPDATE), body)

    def _state_cycle(self) -> float:
        report = self.member.device.spec.stateReport
        if report is None or not report.reportCycle:
            return 0.0
        return cycle_seconds(report.reportCycle, what=f"{self.id} stateReport.reportCycle")

    def _publish_state(self) -> None:
        self._publish(device_topic(self.id, Action.STATE_UPDATE), encode_state_update("", self.state))

    def _request_twin(self) -> None:
        self._publish(device_topic(self.id, Action.TWIN_GET), encode_request(f"mapper-{next(_event_ids)}"))

    def _set_state(self, state: str, reason: str | None) -> None:
        if state == self.state and reason == self._failure:
            return
        previous, self.state = self.state, state
        old_failure, self._failure = self._failure, reason
        if state == "online":
            if old_failure is not None:
                log.info("%s: online again (was %s)", self.id, previous)
            else:
                log.info("%s: online", self.id)
        elif state == previous:
            log.debug("%s: still %s: %s", self.id, state, reason)
        else:
            log.error("%s: %s: %s", self.id, state, reason)
        if state != previous:
            self._publish_state()


def _raise_if_cancelled() -> None:
    """Re-raise a cancellation that a library swallowed.

    Python 3.11's ``asyncio.wait_for`` (which pymodbus awaits every request with) drops a
    cancellation that arrives as its inner future completes; the task then polls on as if nothing
    happened and a removed device, or a stopping runner, would never stop. The request to cancel is
    still counted on the task, so it is checked once per loop.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
