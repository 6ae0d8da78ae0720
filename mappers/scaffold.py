"""``edgetwin mapper new NAME``: a plugin package that installs, shows up and runs as it is.

A new plugin author starts from working code, not from documentation: the generated package has a
``pyproject.toml`` with the ``edgetwin.mappers`` entry point, a plugin modelled on
``mappers.virtual`` with a simulated device where the protocol library goes, a sample
DeviceModel and Device for it, and a passing test.

A protocol name is what Devices write in ``spec.protocol.protocolName``, so KubeEdge's spellings
(``my-bus``) are taken as they are; the Python module and class are derived from it.
"""

from __future__ import annotations

import re
from pathlib import Path
from string import Template

from twin.errors import PermanentError

__all__ = ["NAME_PATTERN", "NAME_RULE", "ScaffoldError", "scaffold"]

NAME_PATTERN = re.compile(r"^[a-z](?:[a-z0-9]|[-_](?=[a-z0-9])){0,39}$")
NAME_RULE = "lower-case letters, digits, '-' and '_', starting with a letter, at most 40 characters"


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
    python -m pytest            # the plugin's tests

Try it with the sample device in `examples/device.yaml` (a DeviceModel and a Device on node
`edge-node-1`), on one machine:

    edgetwin node edge-node-1 --serve-broker --devices examples/ --mappers $name
    edgetwin twin get demo-$name          # in another terminal: the reported value of `level`
    edgetwin twin set demo-$name level 9  # written through the plugin and read back

or, with a cluster (`edgetwin up`, or `edgetwin cloud` and `edgetwin node --cloud`),
`kubectl apply -f examples/device.yaml` and `edgetwin mapper run $name --node edge-node-1`.

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

_EXAMPLE = Template("""\
# A sample device for the $name mapper: `kubectl apply -f` this file, or pass its folder to
# `edgetwin node edge-node-1 --devices`. Edit configData to point at your device.
apiVersion: devices.kubeedge.io/v1beta1
kind: DeviceModel
metadata:
  name: demo-$name-model
  namespace: default
spec:
  protocol: $name
  properties:
    - name: level
      type: INT
      accessMode: ReadWrite
      minimum: "0"
      maximum: "100"
---
apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata:
  name: demo-$name
  namespace: default
spec:
  deviceModelRef:
    name: demo-$name-model
  nodeName: edge-node-1
  protocol:
    protocolName: $name
    configData:
      host: 127.0.0.1
      port: 4000
  properties:
    - name: level
      collectCycle: 1000
      reportCycle: 1000
      reportToCloud: true
      desired:
        value: "7"
      visitors:
        protocolName: $name
        configData:
          address: level
          initial: "7"
""")

_TEST = Template('''\
"""The $name plugin reads and writes through the SDK's interface, and installs as an entry point."""

from __future__ import annotations

import asyncio
from importlib.metadata import entry_points
from pathlib import Path

from mappers import Buses, Registry
from mappers.binding import bind_device
from twin.manifests import load_manifests
from twin.models import Device, DeviceModel

from $module import ${cls}

EXAMPLES = Path(__file__).parent.parent / "examples"

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


def test_the_sample_device_binds_to_the_plugin() -> None:
    manifests = load_manifests([EXAMPLES])
    (device,) = manifests.devices.values()
    (model,) = manifests.models.values()
    binding = bind_device(device, model, ${cls})
    assert binding.problems == ()
    assert [prop.name for prop in binding.device.properties] == ["level"]


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
        hint = name.lower()
        suggestion = f" (did you mean {hint!r}?)" if hint != name and NAME_PATTERN.match(hint) else ""
        raise ScaffoldError(f"{name!r} is not a usable protocol name: {NAME_RULE}{suggestion}")
    words = re.split(r"[-_]", name)
    dist = "edgetwin-mapper-" + "-".join(words)
    module = "edgetwin_mapper_" + "_".join(words)
    cls = "".join(word.capitalize() for word in words) + "Mapper"
    root = parent / dist
    if root.exists():
        raise ScaffoldError(f"{root} already exists")
    values = {"name": name, "dist": dist, "module": module, "cls": cls}
    files = {
        root / "pyproject.toml": _PYPROJECT,
        root / "README.md": _README,
        root / "src" / module / "__init__.py": _PLUGIN,
        root / "examples" / "device.yaml": _EXAMPLE,
        root / "tests" / f"test_{'_'.join(words)}.py": _TEST,
    }
    for path, template in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.substitute(values))
    return root
