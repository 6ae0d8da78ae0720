"""KubeEdge topics: both device id forms, and never confusing a request with a reply."""

from __future__ import annotations

import pytest

from twin.topics import Action, DeviceTopic, device_topic, event_topics, membership_topic, parse_device_topic


@pytest.mark.parametrize(
    ("topic", "parsed"),
    [
        ("$hw/events/device/led/twin/update", DeviceTopic("default/led", Action.TWIN_UPDATE, legacy=True)),
        ("$hw/events/device/plant/pump/twin/get", DeviceTopic("plant/pump", Action.TWIN_GET, legacy=False)),
        (
            "$hw/events/device/default/led/state/update",
            DeviceTopic("default/led", Action.STATE_UPDATE, legacy=False),
        ),
        ("$hw/events/device/led/twin/update/result", None),
        ("$hw/events/device/led/twin/update/document", None),
        ("$hw/events/device/a/b/c/twin/update", None),
        ("$hw/events/device//twin/update", None),
        ("$hw/events/device/twin/update", None),
        ("other/led/twin/update", None),
    ],
)
def test_request_topics_are_parsed(topic: str, parsed: DeviceTopic | None) -> None:
    assert parse_device_topic(topic) == parsed


def test_replies_use_the_form_the_request_came_in() -> None:
    legacy = parse_device_topic("$hw/events/device/led/twin/get")
    assert legacy is not None
    assert legacy.reply(Action.TWIN_GET_RESULT) == "$hw/events/device/led/twin/get/result"
    modern = parse_device_topic("$hw/events/device/default/led/twin/get")
    assert modern is not None
    assert modern.reply(Action.TWIN_GET_RESULT) == "$hw/events/device/default/led/twin/get/result"


def test_events_of_default_devices_go_to_both_forms_unless_switched_off() -> None:
    assert event_topics("default/led", Action.TWIN_UPDATE_DELTA) == [
        "$hw/events/device/default/led/twin/update/delta",
        "$hw/events/device/led/twin/update/delta",
    ]
    assert event_topics("default/led", Action.TWIN_UPDATE_DELTA, legacy_topics=False) == [
        "$hw/events/device/default/led/twin/update/delta"
    ]
    assert event_topics("plant/pump", Action.TWIN_UPDATE_DOCUMENT) == [
        "$hw/events/device/plant/pump/twin/update/document"
    ]


def test_topic_builders() -> None:
    assert device_topic("plant/pump", Action.STATE_UPDATE) == "$hw/events/device/plant/pump/state/update"
    assert membership_topic("n1", "get/result") == "$hw/events/node/n1/membership/get/result"
