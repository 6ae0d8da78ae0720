"""The mapper runner with the virtual plugin, a real twin service and real brokers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from edgemqtt.client import BrokerAddress
from mappers.plugin import MappedProperty, Mapper, PluginConfig
from mappers.registry import Registry
from mappers.runner import MapperRunner
from mappers.virtual import VirtualMapper, simulated
from mappers.virtual.device import forget_all
from tests.fixtures.brokers import Mosquitto
from tests.fixtures.twin import start_twin
from tests.mappers.builders import device, manifests, model
from tests.mappers.harness import FAST, mapper_stack, until
from twin.client import TwinClient
from twin.models import Device
from twin.values import Value

THERMO = model(
    "thermo-model",
    "virtual",
    {"temp": "FLOAT", "target": "INT", "power": "BOOLEAN"},
    read_only=("temp",),
)


def thermo(
    name: str, *, desired: dict[str, str] | None = None, report_ms: int = 0, collect_ms: int = 20
) -> Device:
    return device(
        name,
        "thermo-model",
        "virtual",
        {},
        {"temp": {"initial": "21.5"}, "target": {"initial": "18"}, "power": {"initial": "false"}},
        desired=desired,
        report_ms=report_ms,
        collect_ms=collect_ms,
    )


@pytest.fixture(autouse=True)
def fresh_simulated_devices() -> Iterator[None]:
    forget_all()
    yield
    forget_all()


async def test_device_values_reach_the_twin_and_changes_follow(broker: BrokerAddress, tmp_path: Path) -> None:
    async with mapper_stack(broker, manifests(THERMO, thermo("a")), tmp_path) as stack:
        await stack.state("default/a", "online")
        await stack.reported("default/a", "temp", "21.5")
        simulated("default/a").set("temp", 23.25)
        await stack.reported("default/a", "temp", "23.25")


async def test_desired_value_is_written_to_the_device_and_confirmed(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async with mapper_stack(mosquitto.address, manifests(THERMO, thermo("a")), tmp_path) as stack:
        await stack.state("default/a", "online")
        async with TwinClient(mosquitto.address) as twins:
            await twins.set_desired("default/a", {"target": "25", "power": "true"})
        await stack.reported("default/a", "target", "25")
        await until(lambda: ("power", True) in simulated("default/a").writes)
        assert ("target", 25) in simulated("default/a").writes


async def test_desired_value_pending_before_the_mapper_started_is_written(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    defs = manifests(THERMO, thermo("a", desired={"target": "22"}))
    async with mapper_stack(mosquitto.address, defs, tmp_path) as stack:
        await stack.reported("default/a", "target", "22")
        assert simulated("default/a").writes == [("target", 22)]


async def test_unchanged_values_are_not_reported_again(mosquitto: Mosquitto, tmp_path: Path) -> None:
    async with mapper_stack(mosquitto.address, manifests(THERMO, thermo("a")), tmp_path) as stack:
        await stack.reported("default/a", "temp", "21.5")
        reads = simulated("default/a").reads
        await until(lambda: simulated("default/a").reads >= reads + 30)
        simulated("default/a").set("temp", 20.0)
        await stack.reported("default/a", "temp", "20")
        stack.collect()
        assert stack.updates_from_mapper("default/a") == 2


async def test_report_cycle_bounds_how_often_a_changing_value_is_sent(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    counter = device(
        "counter",
        "thermo-model",
        "virtual",
        {},
        {"target": {"initial": "0", "step": 1}},
        collect_ms=10,
        report_ms=300,
    )
    loop = asyncio.get_running_loop()
    async with mapper_stack(mosquitto.address, manifests(THERMO, counter), tmp_path) as stack:
        await stack.state("default/counter", "online")
        start = loop.time()
        await until(lambda: simulated("default/counter").reads >= 60)
        elapsed = loop.time() - start
        await stack.wait("device/default/counter/twin/update")
        stack.collect()
        updates = stack.updates_from_mapper("default/counter")
        # The value changes on every read (60+ reads), but goes out at most once per 300 ms.
        assert 1 <= updates <= elapsed / 0.3 + 2


async def test_unreachable_device_goes_offline_and_back_online_while_others_run(
    mosquitto: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mappers")
    defs = manifests(THERMO, thermo("dead"), thermo("alive"))
    async with mapper_stack(mosquitto.address, defs, tmp_path) as stack:
        await stack.state("default/dead", "online")
        simulated("default/dead").unreachable = True
        await stack.state("default/dead", "offline")
        simulated("default/alive").set("temp", 30.0)
        await stack.reported("default/alive", "temp", "30")
        simulated("default/dead").unreachable = False
        await stack.state("default/dead", "online")
        await until(lambda: stack.twin.twins["default/dead"].state == "online")
    failures = [r for r in caplog.records if r.levelno == logging.ERROR and "default/dead" in r.getMessage()]
    assert len(failures) == 1
    assert any("default/dead: online again" in r.getMessage() for r in caplog.records)


async def test_refused_desired_value_makes_the_device_unhealthy_with_the_reason(
    mosquitto: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with mapper_stack(mosquitto.address, manifests(THERMO, thermo("a")), tmp_path) as stack:
        await stack.state("default/a", "online")
        simulated("default/a").refuse["target"] = "above the safety limit"
        async with TwinClient(mosquitto.address) as twins:
            await twins.set_desired("default/a", {"target": "29"})
            await stack.state("default/a", "unhealthy")
            assert "above the safety limit" in caplog.text
            del simulated("default/a").refuse["target"]
            await twins.set_desired("default/a", {"target": "28"})
            await stack.state("default/a", "online")
            await stack.reported("default/a", "target", "28")


async def test_devices_added_and_removed_on_the_node_are_followed(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async with mapper_stack(mosquitto.address, manifests(THERMO, thermo("a")), tmp_path) as stack:
        await stack.state("default/a", "online")
        await stack.twin.set_definitions(manifests(THERMO, thermo("b")))
        await stack.state("default/b", "online")
        await until(lambda: "default/a" not in stack.runner.workers)
        assert set(stack.runner.workers) == {"default/b"}


async def test_mapper_started_before_the_twin_waits_for_it(mosquitto: Mosquitto, tmp_path: Path) -> None:
    runner = MapperRunner("edge-node-1", mosquitto.address, protocols=["virtual"], settings=FAST)
    task = asyncio.create_task(runner.run(), name="early mapper")
    try:
        await until(lambda: runner._mqtt is not None)
        async with start_twin(mosquitto.address, manifests(THERMO, thermo("a")), data_dir=tmp_path):
            async with asyncio.timeout(10):
                await runner.ready.wait()
            await until(lambda: simulated("default/a").reads > 0)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def broken_distribution(root: Path) -> Path:
    """An installed distribution whose mapper entry point names a module that does not exist."""
    info = root / "acme_broken_mapper-1.2.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-broken-mapper\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text("[edgetwin.mappers]\nbroken = acme_broken_mapper_missing:Mapper\n")
    return root


async def test_plugin_that_fails_to_load_is_reported_while_the_others_run(
    mosquitto: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(broken_distribution(tmp_path / "site")))
    broken = device("plc", "thermo-model", "broken", {}, {"temp": {}})
    async with mapper_stack(
        mosquitto.address, manifests(THERMO, thermo("a"), broken), tmp_path / "twin", registry=Registry()
    ) as stack:
        await stack.reported("default/a", "temp", "21.5")
        assert "default/plc" not in stack.runner.workers
    assert "mapper plugin 'broken' from acme-broken-mapper 1.2.3 failed to load" in caplog.text


class _Buggy(Mapper[PluginConfig, PluginConfig]):
    protocol = "buggy"

    async def read(self, prop: MappedProperty[PluginConfig]) -> Value:
        raise RuntimeError("plugin bug")


async def test_plugin_bug_marks_its_device_unhealthy_and_spares_the_others(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    registry = Registry(plugins={"buggy": _Buggy, "virtual": VirtualMapper})
    buggy = device("bug", "thermo-model", "buggy", {}, {"temp": {}})
    async with mapper_stack(
        mosquitto.address, manifests(THERMO, thermo("a"), buggy), tmp_path, registry=registry
    ) as stack:
        await stack.state("default/bug", "unhealthy")
        simulated("default/a").set("temp", 19.0)
        await stack.reported("default/a", "temp", "19")


class _Pushing(Mapper[PluginConfig, PluginConfig]):
    """A push protocol: values arrive when the device sends them (``watch``), not when polled."""

    protocol = "pushing"
    pushed: asyncio.Queue[tuple[str, Value]]
    reads = 0

    async def read(self, prop: MappedProperty[PluginConfig]) -> Value:
        type(self).reads += 1
        return 0.0

    def pushes(self, prop: MappedProperty[PluginConfig]) -> bool:
        return True

    async def watch(self, props: Sequence[MappedProperty[PluginConfig]]) -> AsyncIterator[tuple[str, Value]]:
        while True:
            yield await self.pushed.get()


async def test_a_pushed_property_is_read_once_then_reported_as_the_device_pushes_it(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    _Pushing.pushed = asyncio.Queue()
    _Pushing.reads = 0
    registry = Registry(plugins={"pushing": _Pushing})
    meter = device("meter", "thermo-model", "pushing", {}, {"temp": {}}, collect_ms=5)
    async with mapper_stack(
        mosquitto.address, manifests(THERMO, meter), tmp_path, registry=registry
    ) as stack:
        await stack.reported("default/meter", "temp", "0")
        _Pushing.pushed.put_nowait(("temp", 30.5))
        await stack.reported("default/meter", "temp", "30.5")
        _Pushing.pushed.put_nowait(("temp", 31.5))
        await stack.reported("default/meter", "temp", "31.5")
        assert _Pushing.reads == 1  # polled every 5 ms, it would have been read dozens of times


async def test_state_is_reported_again_every_state_report_cycle(mosquitto: Mosquitto, tmp_path: Path) -> None:
    dev = thermo("a")
    doc = dev.model_dump(mode="json")
    doc["spec"]["stateReport"] = {"reportCycle": 50, "reportToCloud": True}
    async with mapper_stack(
        mosquitto.address, manifests(THERMO, Device.model_validate(doc)), tmp_path
    ) as stack:
        for _ in range(3):
            await stack.state("default/a", "online")


def test_loading_the_sdk_and_a_pure_python_plugin_does_not_import_pymodbus() -> None:
    import subprocess
    import sys

    code = (
        "import sys, mappers, mappers.runner, mappers.modbus\n"
        "from mappers import Registry\n"
        "r = Registry(); r.info('modbus'); r.load('virtual')\n"
        "assert 'pymodbus' not in sys.modules, 'pymodbus imported'\n"
        "r.load('modbus')\n"
        "assert 'pymodbus' in sys.modules\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr


def test_loading_the_sdk_and_listing_plugins_does_not_import_asyncua() -> None:
    import subprocess
    import sys

    code = (
        "import sys, mappers, mappers.runner, mappers.opcua, mappers.opcua.config\n"
        "from mappers import Registry\n"
        "r = Registry(); r.info('opcua'); r.names(); r.load('virtual'); r.load('modbus')\n"
        "assert 'asyncua' not in sys.modules, 'asyncua imported'\n"
        "r.load('opcua')\n"
        "assert 'asyncua' in sys.modules\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr


class _Swallowing(Mapper[PluginConfig, PluginConfig]):
    """Loses a cancellation the way Python 3.11's ``asyncio.wait_for`` can (pymodbus awaits with it)."""

    protocol = "swallowing"
    tasks: ClassVar[list[asyncio.Task[Any]]] = []

    async def read(self, prop: MappedProperty[PluginConfig]) -> Value:
        task = asyncio.current_task()
        assert task is not None
        if task not in self.tasks:
            self.tasks.append(task)
        try:
            await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            return 1.0
        return 0.0


async def test_device_whose_library_swallows_a_cancellation_still_stops(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    _Swallowing.tasks = []
    registry = Registry(plugins={"swallowing": _Swallowing, "virtual": VirtualMapper})
    dev = device("sw", "thermo-model", "swallowing", {}, {"temp": {}}, collect_ms=1)
    async with mapper_stack(mosquitto.address, manifests(THERMO, dev), tmp_path, registry=registry) as stack:
        await stack.state("default/sw", "online")
        await stack.twin.set_definitions(manifests(THERMO, thermo("a")))
        await stack.state("default/a", "online")
        (task,) = _Swallowing.tasks
        await asyncio.wait([task], timeout=10)
        assert task.done()


class _Exclusive(Mapper[PluginConfig, PluginConfig]):
    """Counts how many instances hold the device at once (a GPIO pin can be held by one)."""

    protocol = "exclusive"
    holding = 0
    most = 0
    connects = 0

    async def connect(self) -> None:
        cls = type(self)
        cls.connects += 1
        cls.holding += 1
        cls.most = max(cls.most, cls.holding)

    async def close(self) -> None:
        await asyncio.sleep(0.05)  # letting go takes a moment, as closing a real link does
        type(self).holding -= 1

    async def read(self, prop: MappedProperty[PluginConfig]) -> Value:
        return 1.0


async def test_a_changed_device_is_reconnected_only_after_its_old_connection_is_closed(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    _Exclusive.holding = _Exclusive.most = _Exclusive.connects = 0
    registry = Registry(plugins={"exclusive": _Exclusive})
    first = device("x", "thermo-model", "exclusive", {"a": 1}, {"temp": {}})
    changed = device("x", "thermo-model", "exclusive", {"a": 2}, {"temp": {}})
    async with mapper_stack(
        mosquitto.address, manifests(THERMO, first), tmp_path, registry=registry
    ) as stack:
        await stack.state("default/x", "online")
        await stack.twin.set_definitions(manifests(THERMO, changed))
        await until(lambda: _Exclusive.connects == 2)
        await stack.state("default/x", "online")
    assert _Exclusive.most == 1


async def test_a_new_desired_value_in_the_device_spec_does_not_reconnect_the_device(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    forget_all()
    async with mapper_stack(mosquitto.address, manifests(THERMO, thermo("a")), tmp_path) as stack:
        await stack.state("default/a", "online")
        worker = stack.runner.workers["default/a"]
        await stack.twin.set_definitions(manifests(THERMO, thermo("a", desired={"target": "25"})))
        await until(lambda: simulated("default/a").values.get("target") == 25)
        assert stack.runner.workers["default/a"] is worker
