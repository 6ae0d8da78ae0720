"""The MQTT API reference against a real twin: every documented request sent, every reply compared.

docs/mqtt-api.md shows a device file, the command that serves it, and requests each followed by
the replies the twin publishes. This test does what the page says, in its order: it writes the
file, runs the command (on a free port, through ``EDGETWIN_BROKER``), sends each request as raw
bytes, and compares each documented reply with the first matching message on its topic: the same
keys everywhere, the same values except timestamps, times of day and new event ids, and the
documented order. The reference cannot drift from the twin without this test failing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from edgemqtt.client import BrokerAddress
from tests.docs import shell
from tests.docs.markdown import REPO, CodeBlock, code_blocks
from tests.fixtures.mqtt import MqttProbe, mqtt_probe
from tests.fixtures.processes import Service
from tests.fixtures.stack import terminal_env
from tests.fixtures.tools import free_port

PAGE = REPO / "docs" / "mqtt-api.md"
#: Values that differ from run to run: compared by type only.
VOLATILE = frozenset({"timestamp", "lastOnlineTime", "last_online"})
#: A documented string that stands for any value (the Device and DeviceModel in membership).
ANY = "…"


def _differences(doc: Any, got: Any, path: str, *, echoed: str | None) -> list[str]:
    """How a reply differs from its documented shape and values."""
    here = path or "<body>"
    if doc == ANY:
        return []
    if isinstance(doc, dict):
        if not isinstance(got, dict):
            return [f"{here}: documented an object, got {got!r}"]
        problems = [f"{path}.{key}: documented, missing from the reply" for key in doc.keys() - got.keys()]
        problems += [
            f"{path}.{key}: in the reply ({got[key]!r}), not documented" for key in got.keys() - doc.keys()
        ]
        for key in doc.keys() & got.keys():
            if key in VOLATILE or (key == "event_id" and doc[key] != echoed):
                if type(doc[key]) is not type(got[key]):
                    problems.append(f"{path}.{key}: documented a {type(doc[key]).__name__}, got {got[key]!r}")
                continue
            problems += _differences(doc[key], got[key], f"{path}.{key}", echoed=echoed)
        return problems
    if isinstance(doc, list):
        if not isinstance(got, list) or len(got) != len(doc):
            return [f"{here}: documented {len(doc)} item(s), got {got!r}"]
        return [
            p
            for i, (d, g) in enumerate(zip(doc, got, strict=True))
            for p in _differences(d, g, f"{path}[{i}]", echoed=echoed)
        ]
    if doc != got or type(doc) is not type(got):
        return [f"{here}: documented {doc!r}, got {got!r}"]
    return []


def _event_id(payload: bytes) -> str | None:
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    return body.get("event_id") if isinstance(body, dict) else None


async def _reply(probe: MqttProbe, topic: str, echoed: str | None, skipped: list[str]) -> dict[str, Any]:
    """The next message on ``topic`` (with the request's event id, when the reply repeats it)."""
    while True:
        message = await probe.next(timeout=10)
        if message.topic != topic:
            skipped.append(message.topic)
            continue
        body = orjson.loads(message.payload)
        if echoed is not None and body.get("event_id") not in (echoed, ""):
            skipped.append(f"{message.topic} (event {body.get('event_id')!r})")
            continue
        assert isinstance(body, dict)
        return body


def _node_command(blocks: list[CodeBlock]) -> list[str]:
    for block in blocks:
        if block.lang in ("sh", "console"):
            for command in shell.commands(block.text, console=block.lang == "console", first_line=block.line):
                for argv in shell.edgetwin_argvs(command):
                    if argv[:1] == ["node"]:
                        return argv
    raise AssertionError(f"{PAGE.name} shows no `edgetwin node` command to serve its examples")


async def test_every_request_of_the_mqtt_reference_gets_the_documented_reply(tmp_path: Path) -> None:
    blocks = code_blocks(PAGE)
    for block in blocks:
        if block.marker == "file":
            (tmp_path / block.argument).write_text(block.text)
    broker = f"mqtt://127.0.0.1:{free_port()}"
    node = Service(_node_command(blocks), cwd=tmp_path, env=terminal_env(tmp_path, EDGETWIN_BROKER=broker))
    problems: list[str] = []
    checked = 0
    try:
        node.wait_for("node edge-node-1:")
        async with mqtt_probe(BrokerAddress.parse(broker), "$hw/#") as probe:
            echoed: str | None = None
            for block in blocks:
                if block.marker == "mqtt-request":
                    probe.drain()
                    await probe.send(block.argument, block.text.strip().encode())
                    echoed = _event_id(block.text.encode())
                elif block.marker in ("mqtt-reply", "mqtt-event"):
                    skipped: list[str] = []
                    documented = json.loads(block.text)
                    try:
                        wanted = echoed if documented.get("event_id") == echoed else None
                        got = await _reply(probe, block.argument, wanted, skipped)
                    except TimeoutError:
                        problems.append(f"{block.where}: nothing on {block.argument} (saw {skipped})")
                        continue
                    differences = _differences(documented, got, "", echoed=echoed)
                    if differences:
                        problems.append(
                            f"{block.where}: the reply on {block.argument} differs:\n  "
                            + "\n  ".join(differences)
                            + f"\n  the reply: {json.dumps(got)}"
                        )
                    checked += 1
    finally:
        node.stop()
    assert not problems, "\n\n".join(problems)
    assert checked >= 10, f"only {checked} documented replies: the page lost its examples"


def test_the_comparison_names_a_changed_value_a_missing_key_and_an_extra_one() -> None:
    documented: Mapping[str, Any] = {
        "event_id": "a",
        "timestamp": 1,
        "twin": {"p": {"value": "22"}},
        "code": 400,
    }
    got = {"event_id": "a", "timestamp": 99, "twin": {"p": {"value": "23"}}, "reason": "x"}
    assert sorted(_differences(documented, got, "", echoed="a")) == [
        ".code: documented, missing from the reply",
        ".reason: in the reply ('x'), not documented",
        ".twin.p.value: documented '22', got '23'",
    ]
    assert _differences({"event_id": "new"}, {"event_id": "uuid"}, "", echoed="a") == []
    assert _differences({"event_id": "a"}, {"event_id": "b"}, "", echoed="a") == [
        ".event_id: documented 'a', got 'b'"
    ]
