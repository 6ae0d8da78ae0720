"""The version rules of desired values (cloud_sync.versions): pure, table-driven, no sockets."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cloud_sync.versions import ANNOTATION, EdgeVerdict, Stamp, cloud_writes, judge_edge, read_stamps, settled
from twin.link import DesiredValue


def device(desired: dict[str, str], stamps: dict[str, tuple[str, int, int]] | None = None) -> dict[str, Any]:
    annotations = {}
    if stamps is not None:
        annotations[ANNOTATION] = json.dumps(
            {n: {"value": v, "cloud": c, "edge": e} for n, (v, c, e) in stamps.items()}
        )
    return {
        "metadata": {"name": "d", "namespace": "default", "annotations": annotations},
        "spec": {"properties": [{"name": n, "desired": {"value": v}} for n, v in desired.items()]},
    }


def test_a_first_desired_value_starts_its_cloud_counter_at_the_time_of_the_write() -> None:
    assert cloud_writes(device({"t": "20"}), now_ms=1_700_000_000_000) == {
        "t": Stamp("20", 1_700_000_000_000, 0)
    }


def test_a_changed_value_is_a_cloud_write_that_keeps_the_edge_counter() -> None:
    assert cloud_writes(device({"t": "21"}, {"t": ("20", 5, 3)})) == {"t": Stamp("21", 6, 3)}


def test_settled_values_need_no_write_and_go_down_with_their_pairs() -> None:
    obj = device({"t": "20", "u": "on"}, {"t": ("20", 5, 3), "u": ("off", 1, 0)})
    assert cloud_writes(obj, now_ms=9) == {"u": Stamp("on", 2, 0)}
    assert settled(obj) == {"t": DesiredValue(value="20", cloud=5, edge=3)}


def test_a_malformed_annotation_counts_as_none() -> None:
    obj = device({"t": "20"})
    obj["metadata"]["annotations"][ANNOTATION] = "{not json"
    assert read_stamps(obj) == {}
    assert settled(obj) == {}


def test_a_desired_value_in_yaml_as_a_number_or_boolean_is_read_as_its_string() -> None:
    obj = device({})
    obj["spec"]["properties"] = [
        {"name": "t", "desired": {"value": 21}},
        {"name": "s", "desired": {"value": True}},
    ]
    assert set(cloud_writes(obj, now_ms=1)) == {"t", "s"}
    assert cloud_writes(obj, now_ms=1)["s"].value == "true"


@pytest.mark.parametrize(
    ("spec", "stamp", "incoming", "verdict"),
    [
        ("20", ("20", 5, 3), ("30", 5, 4), EdgeVerdict.ACCEPT),  # same cloud, newer edge
        ("20", ("20", 5, 3), ("30", 5, 9), EdgeVerdict.ACCEPT),  # edge counters may jump
        ("20", ("20", 5, 3), ("20", 5, 3), EdgeVerdict.ALREADY),  # the same write again
        ("20", ("20", 5, 3), ("30", 4, 7), EdgeVerdict.SUPERSEDED),  # the cluster wrote since
        ("20", ("20", 5, 3), ("30", 5, 3), EdgeVerdict.STALE),  # not newer
        ("20", ("20", 5, 3), ("30", 5, 2), EdgeVerdict.STALE),  # older
        ("25", ("20", 5, 3), ("30", 5, 4), EdgeVerdict.SUPERSEDED),  # a cluster change not stamped yet
        ("", None, ("30", 0, 1), EdgeVerdict.ACCEPT),  # the first desired value, set at the edge
        ("25", None, ("30", 0, 1), EdgeVerdict.SUPERSEDED),  # a new Device's value, not stamped yet
    ],
)
def test_the_edge_rule(
    spec: str, stamp: tuple[str, int, int] | None, incoming: tuple[str, int, int], verdict: EdgeVerdict
) -> None:
    obj = device({"t": spec} if spec else {}, {"t": stamp} if stamp else None)
    value, cloud, edge = incoming
    assert judge_edge(obj, "t", DesiredValue(value=value, cloud=cloud, edge=edge)) is verdict
