"""``edgetwin mapper new NAME``: a plugin package that installs, shows up and runs as it is.

A new plugin author starts from working code, not from documentation: the generated package has a
``pyproject.toml`` with the ``edgetwin.mappers`` entry point, a plugin modelled on
``mappers.virtual`` with a simulated device where the protocol library goes, and a passing test.
"""

from __future__ import annotations

import re
from pathlib import Path
from string import Template

from twin.errors import PermanentError

__all__ = ["NAME_PATTERN", "ScaffoldError", "scaffold"]

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class ScaffoldError(PermanentError):
    """A name that cannot be a protocol/package name, or a folder that already exists."""


_PYPROJECT = Template("""\
[build-system]
requires = ["hatchling>=1.25"]
build-backend = "hatchling.build"

[project]
name = "$dist"
version = "0.1.0"
description = "An edgetwin mapper plugin for the $name protocol."
requires-python = ">=3.11"
dependencies = ["edgetwin"]

# This line is what makes `edgetwin mapper list` find the plugin: protocol name = "module:Class".
[project.entry-points."edgetwin.mappers"]
$name = "$module:$cls"

[tool.hatch.build.targets.wheel]
packages = ["src/$module"]

[tool.ruff]
line-length = 110

[tool.pytest.ini_options]
testpaths = ["tests"]
filterwarnings = ["error"]
# edgetwin's test tools include pytest-asyncio, which asks for this to be set.
asyncio_default_fixture_loop_scope = "function"
""")

_README = Template("""\
# $dist

An edgetwin mapper plugin for the `$name` protocol.

    pip install -e .            # into the environment where edgetwin is installed
    edgetwin mapper list        # shows "$name"
    edgetwin mapper run $name --node edge-node-1 --broker mqtt://127.0.0.1:1883
    python -m pytest            # the plugin's tests

A Device served by it sets `spec.protocol.protocolName: $name`; its `configData` is validated by
`${cls}Config` and each property's `visitors.configData` by `${cls}Visitor` (see `src/$module/__init__.py`).
Replace `_FakeConnection` with your protocol library: connect in `connect()`, release in `close()`,
read one property in `read()`, write in `write()`, and raise `DeviceUnreachable` / `DeviceRefused`.
""")

_PLUGIN = Template('''\
"""The $name mapper plugin for edgetwin.

The SDK does the rest: membership, polling every collectCycle, reporting changes, writing desired
values and reading them back, device state, reconnects with backoff. Translate your library's errors
into ``DeviceUnreachable`` (no answer: the device goes offline, the SDK reconnects) and
``DeviceRefused`` (the device said no: unhealthy, keep going).
"""

from __future__ import annotations

from mappers import DeviceRefused, DeviceUnreachable, MappedProperty, Mapper, PluginConfig, Value
from pydantic import Field

__all__ = ["${cls}", "${cls}Config", "${cls}Visitor"]


class ${cls}Config(PluginConfig):
    """The Device's ``spec.protocol.configData``: how to reach the device."""

    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)


class ${cls}Visitor(PluginConfig):
    """A property's ``visitors.configData``: where its value lives on the device."""

    address: str = ""
    initial: str = "0"


class _FakeConnection:
    """Stands in for your protocol library's client: values kept in memory."""

    def __init__(self, host: str, port: int) -> None:
        self.where = f"{host}:{port}"
        self.values: dict[str, str] = {}

    def read(self, address: str, default: str) -> str:
        return self.values.setdefault(address, default)

    def write(self, address: str, value: str) -> None:
        if address == "readonly":
            raise PermissionError(f"{address} cannot be written")
        self.values[address] = value


class ${cls}(Mapper[${cls}Config, ${cls}Visitor]):
    protocol = "$name"
    protocol_config = ${cls}Config
    visitor_config = ${cls}Visitor

    _conn: _FakeConnection | None = None

    async def connect(self) -> None:
        config = self.device.config
        try:
            self._conn = _FakeConnection(config.host, config.port)
        except OSError as exc:
            raise DeviceUnreachable(f"cannot reach {config.host}:{config.port}: {exc}") from exc

    async def close(self) -> None:
        self._conn = None

    def _connection(self) -> _FakeConnection:
        if self._conn is None:
            raise DeviceUnreachable(f"{self.device.id} is not connected")
        return self._conn

    async def read(self, prop: MappedProperty[${cls}Visitor]) -> Value:
        address = prop.config.address or prop.name
        return self._connection().read(address, prop.config.initial)

    async def write(self, prop: MappedProperty[${cls}Visitor], value: Value) -> None:
        address = prop.config.address or prop.name
        try:
            self._connection().write(address, str(value))
        except PermissionError as exc:
            raise DeviceRefused(str(exc)) from exc
''')

_TEST = Template('''\
"""The $name plugin reads and writes through the SDK's interface, and installs as an entry point."""

from __future__ import annotations

import asyncio
from importlib.metadata import entry_points

from mappers import Buses, Registry
from mappers.binding import bind_device
from twin.models import Device, DeviceModel

from $module import ${cls}

MODEL = DeviceModel.model_validate(
    {
        "metadata": {"name": "demo-model"},
        "spec": {"protocol": "$name", "properties": [{"name": "level", "type": "INT"}]},
    }
)
DEVICE = Device.model_validate(
    {
        "metadata": {"name": "demo"},
        "spec": {
            "deviceModelRef": {"name": "demo-model"},
            "protocol": {"protocolName": "$name", "configData": {"host": "127.0.0.1", "port": 9}},
            "properties": [
                {"name": "level", "visitors": {"protocolName": "$name", "configData": {"initial": "7"}}}
            ],
        },
    }
)


def test_reads_and_writes_a_property() -> None:
    binding = bind_device(DEVICE, MODEL, ${cls})
    assert binding.problems == ()
    (level,) = binding.device.properties

    async def scenario() -> list[object]:
        async with ${cls}(binding.device, Buses()) as mapper:
            before = await mapper.read(level)
            await mapper.write(level, 9)
            return [before, await mapper.read(level)]

    assert asyncio.run(scenario()) == ["7", "9"]


def test_is_registered_under_its_protocol_name() -> None:
    names = {ep.name for ep in entry_points(group="edgetwin.mappers")}
    if "$name" in names:  # installed (pip install -e .)
        assert Registry().load("$name") is ${cls}
    else:
        assert ${cls}.protocol == "$name"
''')


def scaffold(name: str, parent: Path) -> Path:
    """Write the package ``edgetwin-mapper-NAME`` under ``parent``; returns its folder."""
    if not NAME_PATTERN.match(name):
        raise ScaffoldError(
            f"{name!r} is not a usable protocol name: "
            "lower-case letters, digits and '_', starting with a letter"
        )
    dist = f"edgetwin-mapper-{name.replace('_', '-')}"
    module = f"edgetwin_mapper_{name}"
    cls = "".join(part.capitalize() for part in name.split("_")) + "Mapper"
    root = parent / dist
    if root.exists():
        raise ScaffoldError(f"{root} already exists")
    values = {"name": name, "dist": dist, "module": module, "cls": cls}
    files = {
        root / "pyproject.toml": _PYPROJECT,
        root / "README.md": _README,
        root / "src" / module / "__init__.py": _PLUGIN,
        root / "tests" / f"test_{name}.py": _TEST,
    }
    for path, template in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.substitute(values))
    return root
