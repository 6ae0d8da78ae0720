"""The embedded MQTT broker byte by byte, over raw sockets, next to mosquitto.

Tests that take the ``broker`` fixture run against mosquitto and against ``edgemqtt.broker``: where they
pass on both, the embedded broker behaves as mosquitto does. Absence of a message is shown with a
fence: a later message on the same path (same publisher, same subscriber), which MQTT delivers in
order, so everything that was going to arrive before it has arrived when it does.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgemqtt.address import BrokerAddress
from tests.edgemqtt.raw import (
    CONNACK,
    DISCONNECT,
    PINGREQ,
    PINGRESP,
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    SUBSCRIBE,
    TIMEOUT,
    UNSUBSCRIBE,
    Packet,
    Raw,
    ack,
    connect_packet,
    packet,
    publish_packet,
    raw_client,
    string,
    subscribe_packet,
)

# A broker bug that escapes as an exception (ours logged, or asyncio's) fails the test.
pytestmark = pytest.mark.usefixtures("no_errors_logged")


def topics(packets: list[Packet]) -> list[str]:
    return [p.topic for p in packets]


# -- publish and subscribe ------------------------------------------------------------------------


async def test_qos0_and_qos1_messages_arrive_at_the_lower_of_publish_and_subscription_qos(
    broker: BrokerAddress, prefix: str
) -> None:
    async with raw_client(broker) as sub, raw_client(broker) as pub:
        assert await sub.subscribe((f"{prefix}/one", 1), (f"{prefix}/zero", 0)) == [1, 0]
        await pub.publish(f"{prefix}/one", b"a", qos=1)
        await pub.publish(f"{prefix}/zero", b"b", qos=1)
        await pub.publish(f"{prefix}/one", b"c", qos=0)
        first, second, third = [await sub.read() for _ in range(3)]
    assert (first.topic, first.payload, first.qos, first.retain) == (f"{prefix}/one", b"a", 1, False)
    assert first.packet_id != 0
    assert (second.topic, second.payload, second.qos) == (f"{prefix}/zero", b"b", 0)
    assert (third.topic, third.payload, third.qos) == (f"{prefix}/one", b"c", 0)


async def test_qos2_publish_is_routed_once_on_pubrel_however_often_it_is_resent(
    broker: BrokerAddress, prefix: str
) -> None:
    async with raw_client(broker) as sub, raw_client(broker) as pub:
        await sub.subscribe((f"{prefix}/#", 1))
        pub.send(publish_packet(f"{prefix}/exact", b"once", qos=2, packet_id=7))
        assert (await pub.expect(PUBREC)).packet_id == 7
        pub.send(publish_packet(f"{prefix}/exact", b"once", qos=2, packet_id=7, dup=True))
        assert (await pub.expect(PUBREC)).packet_id == 7
        await pub.publish(f"{prefix}/fence1", b"")
        assert await sub.until(f"{prefix}/fence1") == []  # held until PUBREL, as mosquitto does
        pub.send(ack(PUBREL, 7))
        assert (await pub.expect(PUBCOMP)).packet_id == 7
        await pub.publish(f"{prefix}/fence2", b"")
        delivered = await sub.until(f"{prefix}/fence2")
    assert [(m.topic, m.payload, m.qos) for m in delivered] == [(f"{prefix}/exact", b"once", 1)]


async def test_pubrel_for_an_unknown_packet_id_is_still_completed(broker: BrokerAddress) -> None:
    async with raw_client(broker) as client:
        client.send(ack(PUBREL, 99))
        assert (await client.expect(PUBCOMP)).packet_id == 99


async def test_qos2_subscription_is_granted_qos1_by_the_embedded_broker(
    embedded_mqtt: BrokerAddress, prefix: str
) -> None:
    async with raw_client(embedded_mqtt) as sub, raw_client(embedded_mqtt) as pub:
        assert await sub.subscribe((f"{prefix}/t", 2)) == [1]
        await pub.publish(f"{prefix}/t", b"x", qos=2)
        message = await sub.expect(PUBLISH)
    assert (message.topic, message.qos) == (f"{prefix}/t", 1)


async def test_granted_qos_never_exceeds_the_request(broker: BrokerAddress, prefix: str) -> None:
    async with raw_client(broker) as sub:
        granted = await sub.subscribe((f"{prefix}/0", 0), (f"{prefix}/1", 1), (f"{prefix}/2", 2))
    assert granted[:2] == [0, 1]
    assert granted[2] in (1, 2)


async def test_overlapping_subscriptions_deliver_one_copy_at_the_highest_qos(
    broker: BrokerAddress, prefix: str
) -> None:
    async with raw_client(broker) as sub, raw_client(broker) as pub:
        await sub.subscribe((f"{prefix}/#", 0), (f"{prefix}/+", 1))
        await pub.publish(f"{prefix}/x", b"1", qos=1)
        await pub.publish(f"{prefix}/y", b"", qos=0)
        delivered = await sub.until(f"{prefix}/y")
    assert [(m.topic, m.qos) for m in delivered] == [(f"{prefix}/x", 1)]


async def test_wildcards_match_levels_and_leave_dollar_topics_to_explicit_filters(
    broker: BrokerAddress, prefix: str
) -> None:
    hw = f"$hw/events/device/{prefix}/twin/update"
    plain = [f"{prefix}/room/temp", f"{prefix}/room/hum", f"{prefix}/a/b/temp", f"{prefix}/events/x"]
    filters = {
        "plus": (f"{prefix}/+/temp", f"{prefix}/fence/temp"),
        "hash": ("#", f"{prefix}/fence"),
        "plus_first": ("+/events/#", f"{prefix}/events/fence"),
        "dollar": ("$hw/#", f"$hw/{prefix}/fence"),
        "dollar_plus": ("$hw/events/device/+/twin/#", f"$hw/events/device/{prefix}/twin/fence"),
    }
    async with contextlib.AsyncExitStack() as stack:
        subs = {name: await stack.enter_async_context(raw_client(broker)) for name in filters}
        for name, (topic_filter, _) in filters.items():
            await subs[name].subscribe((topic_filter, 0))
        pub = await stack.enter_async_context(raw_client(broker))
        for topic in [*plain, hw]:
            await pub.publish(topic, b"m")
        for _, fence in filters.values():
            await pub.publish(fence, b"")
        seen = {}
        for name, (_, fence) in filters.items():
            # mosquitto is shared: keep only this test's topics.
            seen[name] = [
                t for t in topics(await subs[name].until(fence)) if prefix in t and "fence" not in t
            ]
    assert seen["plus"] == [f"{prefix}/room/temp"]
    assert seen["hash"] == plain  # `#` never matches a `$` topic
    assert seen["plus_first"] == [f"{prefix}/events/x"]  # nor does a filter starting with `+`
    assert seen["dollar"] == [hw]
    assert seen["dollar_plus"] == [hw]


async def test_unsubscribe_stops_delivery_on_that_filter_only(broker: BrokerAddress, prefix: str) -> None:
    async with raw_client(broker) as sub, raw_client(broker) as pub:
        await sub.subscribe((f"{prefix}/gone", 1), (f"{prefix}/kept", 1))
        await sub.unsubscribe(f"{prefix}/gone")
        await pub.publish(f"{prefix}/gone", b"x", qos=1)
        await pub.publish(f"{prefix}/kept", b"y", qos=1)
        assert await sub.until(f"{prefix}/kept") == []


async def test_publishes_to_sys_topics_are_accepted_and_dropped(broker: BrokerAddress, prefix: str) -> None:
    async with raw_client(broker) as sub, raw_client(broker) as pub:
        await sub.subscribe((f"$SYS/{prefix}", 0), (f"{prefix}/fence", 0))
        await pub.publish(f"$SYS/{prefix}", b"forged", qos=1)
        await pub.publish(f"{prefix}/fence", b"")
        assert await sub.until(f"{prefix}/fence") == []


# -- retained messages ----------------------------------------------------------------------------


async def test_retained_message_is_replaced_delivered_on_subscribe_and_cleared_by_empty_payload(
    broker: BrokerAddress, prefix: str
) -> None:
    topic, fence = f"{prefix}/state", f"{prefix}/fence"
    async with raw_client(broker) as live, raw_client(broker) as pub:
        await live.subscribe((topic, 1))
        await pub.publish(topic, b"v1", qos=1, retain=True)
        await pub.publish(topic, b"v2", qos=0, retain=True)
        first, second = await live.read(), await live.read()
        # To a subscription that already exists, a retained publish goes out as a normal message.
        assert [(p.payload, p.retain) for p in (first, second)] == [(b"v1", False), (b"v2", False)]
        live.send(ack(PUBACK, first.packet_id))

        async with raw_client(broker) as late:
            await late.subscribe((topic, 1))
            retained = await late.expect(PUBLISH)
            # The last one only, flagged retained, at the QoS it was published with.
            assert (retained.topic, retained.payload, retained.retain, retained.qos) == (
                topic,
                b"v2",
                True,
                0,
            )
            await late.subscribe((topic, 1))  # subscribing again sends it again (MQTT-3.8.4-3)
            assert (await late.expect(PUBLISH)).payload == b"v2"

        await pub.publish(topic, b"", qos=1, retain=True)
        cleared = await live.expect(PUBLISH)
        assert (cleared.topic, cleared.payload) == (topic, b"")  # the clearing message is forwarded
        live.send(ack(PUBACK, cleared.packet_id))

        async with raw_client(broker) as later:
            await later.subscribe((topic, 1), (fence, 0))
            await pub.publish(fence, b"")
            assert await later.until(fence) == []


async def test_retained_messages_are_sent_once_per_matching_filter(
    broker: BrokerAddress, prefix: str
) -> None:
    async with raw_client(broker) as pub:
        await pub.publish(f"{prefix}/r", b"x", qos=1, retain=True)
        async with raw_client(broker) as sub:
            await sub.subscribe((f"{prefix}/r", 1), (f"{prefix}/#", 0))
            copies = [await sub.expect(PUBLISH), await sub.expect(PUBLISH)]
        await pub.publish(f"{prefix}/r", b"", retain=True)
    assert [(p.topic, p.qos, p.retain) for p in copies] == [
        (f"{prefix}/r", 1, True),
        (f"{prefix}/r", 0, True),
    ]


async def test_retained_message_on_a_dollar_topic_reaches_only_dollar_filters(
    broker: BrokerAddress, prefix: str
) -> None:
    hw = f"$hw/events/device/{prefix}/state"
    async with raw_client(broker) as pub:
        await pub.publish(hw, b"online", qos=1, retain=True)
        async with raw_client(broker) as sub:
            await sub.subscribe(("$hw/events/device/+/state", 1))
            seen = [p for p in [await sub.expect(PUBLISH)] if p.topic == hw]
            while not seen:  # other tests may have left retained $hw messages in mosquitto
                seen = [p for p in [await sub.expect(PUBLISH)] if p.topic == hw]
        await pub.publish(hw, b"", retain=True)
    assert (seen[0].payload, seen[0].retain) == (b"online", True)


# -- last will ------------------------------------------------------------------------------------


async def test_will_is_published_when_a_client_drops_without_disconnect(
    broker: BrokerAddress, prefix: str
) -> None:
    async with raw_client(broker) as watcher:
        await watcher.subscribe((f"{prefix}/will", 1))
        dying = await Raw.open(broker)
        await dying.connect(f"{prefix}-dying", will=(f"{prefix}/will", b"gone", 1, False))
        dying.close()  # no DISCONNECT
        will = await watcher.expect(PUBLISH)
    assert (will.topic, will.payload, will.qos) == (f"{prefix}/will", b"gone", 1)


async def test_retained_will_is_kept_for_later_subscribers(broker: BrokerAddress, prefix: str) -> None:
    dying = await Raw.open(broker)
    await dying.connect(f"{prefix}-dying", will=(f"{prefix}/status", b"offline", 0, True))
    dying.close()
    async with raw_client(broker) as sub:
        await sub.subscribe((f"{prefix}/status", 0))
        status = await sub.expect(PUBLISH)
        await sub.publish(f"{prefix}/status", b"", retain=True)
    assert (status.payload, status.retain) == (b"offline", True)


async def test_no_will_after_a_clean_disconnect(broker: BrokerAddress, prefix: str) -> None:
    async with raw_client(broker) as watcher:
        await watcher.subscribe((f"{prefix}/#", 0))
        leaving = await Raw.open(broker)
        await leaving.connect(f"{prefix}-leaving", will=(f"{prefix}/will", b"gone", 0, False))
        await leaving.disconnect()
        await watcher.publish(f"{prefix}/fence", b"")
        assert await watcher.until(f"{prefix}/fence") == []


async def test_will_is_published_when_the_broker_closes_a_client_for_a_protocol_error(
    broker: BrokerAddress, prefix: str
) -> None:
    async with raw_client(broker) as watcher:
        await watcher.subscribe((f"{prefix}/will", 0))
        rogue = await Raw.open(broker)
        await rogue.connect(f"{prefix}-rogue", will=(f"{prefix}/will", b"broke the rules", 0, False))
        rogue.send(publish_packet(f"{prefix}/+", b"x"))
        assert await rogue.closed_by_broker() == []
        rogue.close()
        assert (await watcher.expect(PUBLISH)).payload == b"broke the rules"


async def test_keepalive_expiry_closes_a_silent_client_and_sends_its_will(
    broker: BrokerAddress, prefix: str
) -> None:
    async with raw_client(broker) as watcher:
        await watcher.subscribe((f"{prefix}/will", 0))
        silent = await Raw.open(broker)
        await silent.connect(f"{prefix}-silent", keepalive=1, will=(f"{prefix}/will", b"timeout", 0, False))
        # After 1.5 keepalives (mosquitto checks about once a second), without a word.
        assert await silent.closed_by_broker(timeout=15) == []
        silent.close()
        assert (await watcher.expect(PUBLISH)).payload == b"timeout"


async def test_pingreq_is_answered(broker: BrokerAddress) -> None:
    async with raw_client(broker, keepalive=60) as client:
        client.send(packet(PINGREQ, 0))
        assert await client.read() == Packet(PINGRESP, 0, b"")


# -- sessions -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old_clean", "new_clean", "will_sent"),
    [(True, True, True), (True, False, True), (False, True, True), (False, False, False)],
)
async def test_same_client_id_takes_the_session_over_and_closes_the_old_connection(
    broker: BrokerAddress, prefix: str, old_clean: bool, new_clean: bool, will_sent: bool
) -> None:
    client_id = f"{prefix}-twin"
    async with raw_client(broker) as watcher:
        await watcher.subscribe((f"{prefix}/#", 0))
        old = await Raw.open(broker)
        await old.connect(client_id, clean=old_clean, will=(f"{prefix}/will", b"old", 0, False))
        new = await Raw.open(broker)
        # Session present only if a persistent session is resumed, not after a clean one.
        assert await new.connect(client_id, clean=new_clean) is (not old_clean and not new_clean)
        assert await old.closed_by_broker() == []
        old.close()
        await new.ping()  # the new connection is served
        await new.publish(f"{prefix}/fence", b"")
        wills = topics(await watcher.until(f"{prefix}/fence"))
        # mosquitto's rule: the old will is sent unless a persistent session carries on.
        assert wills == ([f"{prefix}/will"] if will_sent else [])
        await new.disconnect()
    async with raw_client(broker, client_id, clean=True):
        pass  # drops a persistent session


async def test_persistent_session_keeps_subscriptions_and_queues_qos1_while_away(
    broker: BrokerAddress, prefix: str
) -> None:
    client_id = f"{prefix}-persistent"
    async with raw_client(broker, client_id, clean=False) as sub:
        await sub.subscribe((f"{prefix}/q", 1))
        await sub.disconnect()
    async with raw_client(broker) as pub:
        await pub.publish(f"{prefix}/q", b"m1", qos=1)
        await pub.publish(f"{prefix}/q", b"lost", qos=0)  # QoS 0 is not queued for an absent client
        await pub.publish(f"{prefix}/q", b"m2", qos=2)
        await pub.publish(f"{prefix}/q", b"m3", qos=1)
        back = await Raw.open(broker)
        assert await back.connect(client_id, clean=False) is True  # session present
        await pub.publish(f"{prefix}/q", b"live", qos=0)
        await pub.publish(f"{prefix}/q", b"fence", qos=1)
        received = []
        while True:
            message = await back.expect(PUBLISH)
            if message.qos:
                back.send(ack(PUBACK, message.packet_id))
            received.append((message.payload, message.qos))
            if message.payload == b"fence":
                break
        await back.disconnect()
    assert received == [(b"m1", 1), (b"m2", 1), (b"m3", 1), (b"live", 0), (b"fence", 1)]
    async with raw_client(broker, client_id, clean=True) as fresh:
        await fresh.disconnect()
    fresh = await Raw.open(broker)
    assert await fresh.connect(client_id, clean=False) is False  # clean_session=1 dropped it
    await fresh.disconnect()
    async with raw_client(broker, client_id, clean=True):
        pass


async def test_clean_session_forgets_subscriptions(broker: BrokerAddress, prefix: str) -> None:
    client_id = f"{prefix}-clean"
    async with raw_client(broker, client_id) as sub:
        await sub.subscribe((f"{prefix}/q", 1))
        await sub.disconnect()
    async with raw_client(broker, client_id) as again, raw_client(broker) as pub:
        await pub.publish(f"{prefix}/q", b"x", qos=1)
        await again.subscribe((f"{prefix}/fence", 0))
        await pub.publish(f"{prefix}/fence", b"")
        assert await again.until(f"{prefix}/fence") == []


async def test_unacknowledged_qos1_message_is_resent_with_dup_after_reconnect(
    broker: BrokerAddress, prefix: str
) -> None:
    client_id = f"{prefix}-unacked"
    async with raw_client(broker) as pub:
        first = await Raw.open(broker)
        await first.connect(client_id, clean=False)
        await first.subscribe((f"{prefix}/q", 1))
        await pub.publish(f"{prefix}/q", b"important", qos=1)
        original = await first.expect(PUBLISH)
        assert not original.dup
        first.close()  # gone without PUBACK
        second = await Raw.open(broker)
        assert await second.connect(client_id, clean=False) is True
        again = await second.expect(PUBLISH)
        second.send(ack(PUBACK, again.packet_id))
        await second.disconnect()
    assert (again.payload, again.qos, again.dup, again.packet_id) == (
        b"important",
        1,
        True,
        original.packet_id,
    )
    async with raw_client(broker, client_id, clean=True):
        pass


async def test_many_queued_messages_arrive_in_order_after_reconnect(
    broker: BrokerAddress, prefix: str
) -> None:
    client_id, count = f"{prefix}-backlog", 2_500  # more than the embedded broker's inflight window
    async with raw_client(broker, client_id, clean=False) as sub:
        await sub.subscribe((f"{prefix}/q", 1))
        await sub.disconnect()
    async with raw_client(broker) as pub:
        for index in range(count):
            pub.send(publish_packet(f"{prefix}/q", b"%d" % index, qos=1, packet_id=index + 1))
        for _ in range(count):
            await pub.expect(PUBACK)
    back = await Raw.open(broker)
    assert await back.connect(client_id, clean=False) is True
    payloads = []
    for _ in range(count):
        message = await back.expect(PUBLISH)
        back.send(ack(PUBACK, message.packet_id))
        payloads.append(int(message.payload))
    await back.disconnect()
    assert payloads == list(range(count))
    async with raw_client(broker, client_id, clean=True):
        pass


async def test_empty_client_id_with_clean_session_is_given_one(broker: BrokerAddress) -> None:
    client = await Raw.open(broker)
    assert await client.connect("", clean=True) is False
    await client.ping()
    await client.disconnect()


# -- invalid input closes that client only --------------------------------------------------------


def after_connect(data: bytes) -> bytes:
    return connect_packet(f"bad-{uuid.uuid4().hex[:8]}") + data


BAD_INPUT = {
    "garbage": (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", None),
    "first packet not CONNECT": (packet(PINGREQ, 0), None),
    "first packet SUBSCRIBE": (subscribe_packet(1, ("a", 0)), None),
    "remaining length over four bytes": (b"\x10\xff\xff\xff\xff\x7f", None),
    "unknown protocol name": (connect_packet("x", protocol="HTTP"), None),
    "password without user name": (connect_packet("x", password=b"pw"), None),
    "will with QoS 3": (connect_packet("x", will=("w", b"", 3, False)), None),
    "will to a wildcard topic": (connect_packet("x", will=("w/#", b"", 0, False)), None),
    "bad protocol level": (connect_packet("x", level=7), 1),
    "MQTT name with the 3.1 level": (connect_packet("x", level=3), 1),
    "empty client id, persistent session": (connect_packet("", clean=False), 2),
    "bad remaining length later": (after_connect(b"\x30\xff\xff\xff\xff\x7f"), 0),
    "publish to + topic": (after_connect(publish_packet("a/+/b", b"x")), 0),
    "publish to # topic": (after_connect(publish_packet("a/#", b"x", qos=1, packet_id=1)), 0),
    "publish to empty topic": (after_connect(publish_packet("", b"x")), 0),
    "publish with QoS 3": (after_connect(packet(PUBLISH, 0x06, string("a") + b"\x00\x01")), 0),
    "publish with packet id 0": (after_connect(publish_packet("a", b"x", qos=1, packet_id=0)), 0),
    "topic not UTF-8": (after_connect(publish_packet(b"\xff\xfe", b"x")), 0),
    "topic with U+0000": (after_connect(publish_packet("a\x00b", b"x")), 0),
    "truncated publish": (after_connect(packet(PUBLISH, 0, b"\x00\x09ab")), 0),
    "second CONNECT": (after_connect(connect_packet("again")), 0),
    "subscribe to invalid filter": (after_connect(subscribe_packet(1, ("a/#/b", 0))), 0),
    "subscribe with QoS 3": (after_connect(subscribe_packet(1, ("a", 3))), 0),
    "subscribe with wrong flags": (after_connect(subscribe_packet(1, ("a", 0), flags=0)), 0),
    "subscribe with no filter": (after_connect(packet(SUBSCRIBE, 2, b"\x00\x01")), 0),
    "unsubscribe with no filter": (after_connect(packet(UNSUBSCRIBE, 2, b"\x00\x01")), 0),
    "pubrel with wrong flags": (after_connect(packet(PUBREL, 0, b"\x00\x01")), 0),
    "server-only packet type": (after_connect(packet(CONNACK, 0, b"\x00\x00")), 0),
    "reserved packet type 0": (after_connect(packet(0, 0)), 0),
    "reserved packet type 15": (after_connect(packet(15, 0)), 0),
}


@pytest.mark.parametrize(("data", "connack"), BAD_INPUT.values(), ids=BAD_INPUT.keys())
async def test_invalid_input_closes_only_that_client(
    broker: BrokerAddress, prefix: str, data: bytes, connack: int | None
) -> None:
    async with raw_client(broker) as healthy, raw_client(broker) as pub:
        await healthy.subscribe((f"{prefix}/ok", 1))
        bad = await Raw.open(broker)
        bad.send(data)
        answered = await bad.closed_by_broker()
        bad.close()
        if connack is None:
            assert answered == []
        else:
            assert [(p.kind, p.body[1]) for p in answered] == [(CONNACK, connack)]
        await pub.publish(f"{prefix}/ok", b"still here", qos=1)
        assert (await healthy.expect(PUBLISH)).payload == b"still here"
    async with raw_client(broker) as newcomer:
        await newcomer.ping()


async def test_mqtt_31_clients_are_served(broker: BrokerAddress, prefix: str) -> None:
    async with raw_client(broker, protocol="MQIsdp", level=3) as old, raw_client(broker) as pub:
        await old.subscribe((f"{prefix}/t", 1))
        await pub.publish(f"{prefix}/t", b"hi", qos=1)
        assert (await old.expect(PUBLISH)).payload == b"hi"


async def test_user_name_and_password_are_accepted_by_the_anonymous_broker(
    embedded_mqtt: BrokerAddress,
) -> None:
    async with raw_client(embedded_mqtt, username="me", password=b"secret") as client:
        await client.ping()


# -- random input ---------------------------------------------------------------------------------

# Arbitrary bytes, arbitrary framing, and packets that are nearly right (the parser's edges).
random_frames = st.lists(
    st.builds(packet, st.integers(0, 15), st.integers(0, 15), st.binary(max_size=40)), max_size=6
).map(b"".join)
topic_texts = st.text(alphabet="ab/+#$\x00é", max_size=8)
nearly_right = st.one_of(
    st.builds(
        lambda topic, payload, qos, packet_id, retain, dup: (
            publish_packet(topic.encode(), payload, qos=qos % 3, packet_id=packet_id, retain=retain, dup=dup)
            if qos < 3
            else packet(PUBLISH, 0x06, string(topic) + payload)
        ),
        topic_texts,
        st.binary(max_size=8),
        st.integers(0, 3),
        st.integers(0, 3),
        st.booleans(),
        st.booleans(),
    ),
    st.builds(
        lambda packet_id, filters, flags: subscribe_packet(packet_id, *filters, flags=flags),
        st.integers(0, 3),
        st.lists(st.tuples(topic_texts, st.integers(0, 255)), max_size=3),
        st.sampled_from([0x02, 0x02, 0x00]),
    ),
    st.builds(
        lambda packet_id, filters: packet(
            UNSUBSCRIBE, 0x02, struct.pack("!H", packet_id) + b"".join(map(string, filters))
        ),
        st.integers(0, 3),
        st.lists(topic_texts, max_size=3),
    ),
    st.builds(
        ack,
        st.sampled_from([PUBACK, PUBREC, PUBREL, PUBCOMP]),
        st.integers(0, 3),
    ),
    st.just(packet(PINGREQ, 0)),
    st.just(packet(DISCONNECT, 0)),
)
random_input = st.one_of(
    st.binary(max_size=200), random_frames, st.lists(nearly_right, max_size=8).map(b"".join)
)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=random_input)
async def test_random_bytes_after_connect_never_take_the_broker_down(
    embedded_mqtt: BrokerAddress, data: bytes
) -> None:
    victim = await Raw.open(embedded_mqtt)
    await victim.connect(f"fuzz-{uuid.uuid4().hex[:8]}")
    victim.send(data)
    victim.writer.write_eof()  # whatever the bytes meant, the broker must then close the connection
    async with asyncio.timeout(TIMEOUT):
        with contextlib.suppress(ConnectionError):
            await victim.reader.read()  # to EOF, skipping whatever the broker answered
    victim.close()
    async with raw_client(embedded_mqtt) as fresh:
        await fresh.subscribe(("fuzz/check", 0))
        await fresh.publish("fuzz/check", b"alive")
        message = await fresh.expect(PUBLISH)
        assert (message.topic, message.payload) == ("fuzz/check", b"alive")
