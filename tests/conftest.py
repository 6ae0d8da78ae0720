"""Shared fixtures: each lives once, in a module of ``tests.fixtures``, registered here."""

pytest_plugins = [
    "tests.fixtures.apiserver",
    "tests.fixtures.ble",
    "tests.fixtures.browser",
    "tests.fixtures.brokers",
    "tests.fixtures.cluster",
    "tests.fixtures.gpio",
    "tests.fixtures.logs",
    "tests.fixtures.modbus",
    "tests.fixtures.opcua",
    "tests.fixtures.pods",
    "tests.fixtures.pod_stack",
    "tests.fixtures.stack",
    "tests.fixtures.twin",
    # after twin, which it builds on (a fixture module imported before its turn is not rewritten)
    "tests.fixtures.dmi",
]
