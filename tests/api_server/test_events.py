"""Watch events are encoded once per change and form, and every watcher gets those same bytes."""

from __future__ import annotations

import json
from dataclasses import replace

import orjson

from api_server.builtin import BUILTIN_TYPES
from api_server.events import encode
from api_server.storage import Change

CONFIGMAPS = next(t for t in BUILTIN_TYPES if t.plural == "configmaps")


def a_change() -> Change:
    obj = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "default", "resourceVersion": "7"},
        "data": {"k": "v" * 100_000},
    }
    return Change(7, "MODIFIED", "configmaps", obj, orjson.dumps(obj))


def test_every_json_watcher_gets_the_bytes_made_when_the_change_was_stored() -> None:
    change = a_change()
    head, body = encode(change, CONFIGMAPS, as_table=False)
    assert body is change.json()
    assert encode(change, CONFIGMAPS, as_table=False)[1] is body
    event = json.loads(head + body + b"}")
    assert (event["type"], event["object"]["data"]["k"][:3]) == ("MODIFIED", "vvv")


def test_table_watchers_share_one_table_encoding() -> None:
    change = a_change()
    _, first = encode(change, CONFIGMAPS, as_table=True)
    assert encode(change, CONFIGMAPS, as_table=True)[1] is first
    table = json.loads(first)
    assert table["kind"] == "Table"
    assert table["rows"][0]["cells"][0] == "c"
    assert table["metadata"]["resourceVersion"] == "7"


def test_watchers_of_another_version_share_one_encoding_of_it() -> None:
    change = a_change()
    other = replace(CONFIGMAPS, version="v2")
    _, first = encode(change, other, as_table=False)
    assert encode(change, other, as_table=False)[1] is first
    assert json.loads(first)["apiVersion"] == "v2"
    assert encode(change, CONFIGMAPS, as_table=False)[1] is change.json()
